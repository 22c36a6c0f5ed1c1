package engine

import (
	"context"
	"fmt"
	"slices"
	gosync "sync"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// fakeSource is an in-memory source with Dataverse-like semantics: one
// version counter across tables, copies paged by id, streams polled.
type fakeSource struct {
	mu       gosync.Mutex
	version  int64
	tables   map[string]map[string]fakeRow // table -> id -> row
	untrack  map[string]bool
	pageSize int
	// expire makes the next Stream report the table's cursor expired.
	expire map[string]bool
	// copyErrs fails the next Copy calls of a table.
	copyErrs map[string]int
	// bad makes a table's rows carry a value its schema does not allow.
	bad map[string]bool
	// cols holds the Columns the changes of each table share.
	cols map[string][]string
	// advance makes a stream read's cursor the version counter at the
	// read, as a Dataverse delta token moves with the environment's
	// version whether the table changed or not.
	advance bool
	// gate, when set, holds every Describe until it is closed;
	// described and streams count Describe and Stream (or StreamJoin)
	// calls.
	gate               chan struct{}
	described, streams int
	// joins counts the joins StreamJoin received; refuseJoins makes
	// each end the stream with source.ErrRestart.
	joins       int
	refuseJoins bool
	// copyDelay is a pause before each page of a copy, so that a copy
	// lasts long enough to be watched.
	copyDelay time.Duration
	// resumeExpired makes a Copy that resumes report its cursor expired.
	resumeExpired bool
}

type fakeRow struct {
	version int64
	deleted bool
	name    string
	created time.Time
}

func newFake(tables ...string) *fakeSource {
	f := &fakeSource{tables: map[string]map[string]fakeRow{}, untrack: map[string]bool{}, pageSize: 7,
		expire: map[string]bool{}, copyErrs: map[string]int{}, bad: map[string]bool{}, cols: map[string][]string{}}
	for _, t := range tables {
		f.tables[t] = map[string]fakeRow{}
	}
	return f
}

func (f *fakeSource) put(table, id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	created := time.Date(2020+int(f.version%4), time.Month(1+f.version%12), 1, 0, 0, 0, 0, time.UTC)
	if old, ok := f.tables[table][id]; ok && !old.deleted {
		created = old.created
	}
	f.tables[table][id] = fakeRow{version: f.version, name: name, created: created}
}

func (f *fakeSource) del(table, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	f.tables[table][id] = fakeRow{version: f.version, deleted: true}
}

// live returns "id/version" of the table's live rows, sorted.
func (f *fakeSource) live(table string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, r := range f.tables[table] {
		if !r.deleted {
			out = append(out, fmt.Sprintf("%s/%d", id, r.version))
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeSource) Tables(context.Context) ([]source.TableInfo, error) {
	var out []source.TableInfo
	for t := range f.tables {
		out = append(out, source.TableInfo{Name: t, Tracked: !f.untrack[t]})
	}
	return out, nil
}

func (f *fakeSource) Describe(ctx context.Context, table string) (*schema.Table, error) {
	f.mu.Lock()
	gate := f.gate
	f.described++
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if _, ok := f.tables[table]; !ok {
		return nil, fmt.Errorf("no table %s", table)
	}
	if f.untrack[table] {
		return nil, &source.NotTrackedError{Table: table, Fix: "turn it on"}
	}
	return &schema.Table{
		Name: table,
		Key:  []string{table + "id"},
		Columns: []schema.Column{
			{Name: table + "id", Type: schema.Guid},
			{Name: "name", Type: schema.String, MaxLength: 100},
			{Name: "versionnumber", Type: schema.Int64},
			{Name: "createdon", Type: schema.DateTime},
		},
		PartitionColumn: "createdon",
	}, nil
}

// change returns the change of a row; f.mu is held.
func (f *fakeSource) change(table, id string, r fakeRow) source.Change {
	if r.deleted {
		return source.Change{Table: table, ID: id, Version: r.version, Deleted: true}
	}
	var created any = r.created
	if f.bad[table] {
		created = "not a time"
	}
	cols := f.cols[table]
	if cols == nil {
		cols = []string{table + "id", "name", "versionnumber", "createdon"}
		f.cols[table] = cols
	}
	return source.Change{Table: table, ID: id, Version: r.version, Columns: cols, Values: []any{id, r.name, r.version, created}}
}

// Copy pages by id; the cursor after a page is "p:<version at start>:<last id>",
// the final one "v:<version at start>".
func (f *fakeSource) Copy(ctx context.Context, table, resume string, emit func(context.Context, source.Batch) error) error {
	f.mu.Lock()
	if f.copyErrs[table] > 0 {
		f.copyErrs[table]--
		f.mu.Unlock()
		return fmt.Errorf("%s: transient failure", table)
	}
	start, after := f.version, ""
	expired := f.resumeExpired
	f.mu.Unlock()
	if resume != "" && expired {
		return &source.CursorExpiredError{Table: table, Reason: "test: the copy's snapshot is gone"}
	}
	if resume != "" {
		if _, err := fmt.Sscanf(resume, "p:%d:%s", &start, &after); err != nil {
			return fmt.Errorf("bad resume cursor %q", resume)
		}
	}
	for {
		f.mu.Lock()
		delay := f.copyDelay
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		f.mu.Lock()
		var ids []string
		for id, r := range f.tables[table] {
			if id > after && !r.deleted {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		done := len(ids) <= f.pageSize
		if !done {
			ids = ids[:f.pageSize]
		}
		b := source.Batch{Cursors: map[string]string{}}
		for _, id := range ids {
			b.Changes = append(b.Changes, f.change(table, id, f.tables[table][id]))
		}
		f.mu.Unlock()
		if done {
			b.Done = true
			b.Cursors[table] = fmt.Sprintf("v:%d", start)
		} else {
			after = ids[len(ids)-1]
			b.Cursors[table] = fmt.Sprintf("p:%d:%s", start, after)
		}
		if err := emit(ctx, b); err != nil {
			return err
		}
		if done || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (f *fakeSource) Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, source.Batch) error) error {
	return f.StreamJoin(ctx, cursors, nil, emit)
}

// StreamJoin implements source.Joiner; with refuseJoins set, a join ends
// it with source.ErrRestart, as PostgreSQL's does for a table it read past.
func (f *fakeSource) StreamJoin(ctx context.Context, cursors map[string]string, join <-chan map[string]string, emit func(context.Context, source.Batch) error) error {
	f.mu.Lock()
	f.streams++
	f.mu.Unlock()
	pos := map[string]int64{}
	add := func(cursors map[string]string) error {
		for t, c := range cursors {
			var v int64
			if _, err := fmt.Sscanf(c, "v:%d", &v); err != nil {
				return fmt.Errorf("table %s: bad cursor %q", t, c)
			}
			if _, ok := pos[t]; ok {
				return fmt.Errorf("table %s joined the stream twice", t)
			}
			pos[t] = v
		}
		return nil
	}
	if err := add(cursors); err != nil {
		return err
	}
	for {
		for t := range pos {
			f.mu.Lock()
			if f.expire[t] {
				delete(f.expire, t)
				f.mu.Unlock()
				return &source.CursorExpiredError{Table: t, Reason: "test"}
			}
			b := source.Batch{Cursors: map[string]string{}}
			top := pos[t]
			for id, r := range f.tables[t] {
				if r.version > pos[t] {
					b.Changes = append(b.Changes, f.change(t, id, r))
					top = max(top, r.version)
				}
			}
			if f.advance {
				top = max(top, f.version)
			}
			b.Cursors[t] = fmt.Sprintf("v:%d", top)
			f.mu.Unlock()
			if err := emit(ctx, b); err != nil {
				return err
			}
			pos[t] = top
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-join:
			f.mu.Lock()
			f.joins++
			refuse := f.refuseJoins
			f.mu.Unlock()
			if refuse {
				return fmt.Errorf("fake: %w", source.ErrRestart)
			}
			if err := add(c); err != nil {
				return err
			}
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeSource) Close() error { return nil }
