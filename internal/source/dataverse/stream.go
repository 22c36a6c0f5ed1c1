package dataverse

import (
	"container/heap"
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Versions of deletes. A $deletedEntity carries only the record's id, yet
// the lake orders the changes of one id by Version. A delete read with
// cursor c gets Version c.Max+1, where c.Max is the highest versionnumber
// the connector has seen for the table before the page. Why that orders
// right, with versionnumber being Dataverse's environment-wide rowversion:
//   - After every earlier version of the row: a delta read returns each id
//     at most once, so every version of the row read earlier came in an
//     earlier page and is <= c.Max < c.Max+1.
//   - Before a later re-creation of the same id: the re-created row is
//     written after the delta read that returned the delete began (else
//     that read would have returned the row), so its versionnumber is above
//     every version that existed then, c.Max included: >= c.Max+1. It
//     equals c.Max+1 only when the re-creation is the very first write in
//     the environment after version c.Max; docs/dataverse.md states this
//     limit.
// The delete's Version depends only on the cursor it was read from, so a
// page delivered again after a restart yields the same Version.

// tableState is where Stream is with one table.
type tableState struct {
	name string
	// l is the wire layout; nil until the table's first read loads it.
	l        *layout
	cur      cursor
	due      time.Time
	interval time.Duration
	// changed is true once the delta read in progress returned a change;
	// paging is true while that read has more pages.
	changed, paging bool
	// order is the table's place by name, which breaks ties of due.
	order int
	// schemaDue is when the table's attributes are read again.
	schemaDue time.Time
}

// result is one fetched page, or a schema check, or the error that
// stopped either.
type result struct {
	t   *tableState
	p   *page
	err error
	// checked marks a schema check; l and schema are set when the table's
	// columns changed.
	checked bool
	l       *layout
	schema  *schema.Table
	// loaded is the layout the read loaded first, when the table had none.
	loaded *layout
}

// Stream follows the tables' delta links. Each page becomes one Batch; a
// delta read with no changes becomes an empty Batch that moves the cursor
// (the table is caught up). A table that just returned changes is read
// again after PollInterval; each idle read doubles its interval up to
// MaxPollInterval. Up to Concurrency pages are fetched at once, all under
// the link's request budget; emit is only called from this goroutine.
//
// Every SchemaInterval, between two delta reads, a table's attributes are
// read again; when its columns changed, an empty Batch carries the new
// description in Schemas and a delta link whose $select names the new
// columns, so values of added columns flow from the next change of a row
// on, and dropped columns no longer break the delta link.
func (s *Source) Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, source.Batch) error) error {
	return s.StreamJoin(ctx, cursors, nil, emit)
}

// StreamJoin implements source.Joiner: a table that joins is read at once,
// then scheduled like the others. Tables are independent delta links, so
// every table can join in place.
func (s *Source) StreamJoin(ctx context.Context, cursors map[string]string, join <-chan map[string]string, emit func(context.Context, source.Batch) error) error {
	order := 0
	// add makes the tables of cursors, in name order, due now.
	add := func(cursors map[string]string) ([]*tableState, error) {
		names := make([]string, 0, len(cursors))
		for n := range cursors {
			names = append(names, n)
		}
		sort.Strings(names)
		tables := make([]*tableState, 0, len(names))
		now := time.Now()
		for _, n := range names {
			cur, err := parseCursor(n, cursors[n])
			if err != nil {
				return nil, err
			}
			if !cur.Delta {
				return nil, fmt.Errorf("dataverse table %s: Stream was given the cursor of an unfinished Copy; finish the copy first (Copy with this cursor)", n)
			}
			// A table Describe has not seen loads its layout at its first
			// read, not here: a restart of thousands of tables polls the
			// first ones at once instead of reading every layout first (#16).
			s.mu.Lock()
			l := s.layouts[n]
			s.mu.Unlock()
			tables = append(tables, &tableState{name: n, l: l, cur: cur, due: now, interval: s.cfg.PollInterval, schemaDue: now.Add(s.cfg.SchemaInterval), order: order})
			order++
		}
		return tables, nil
	}
	tables, err := add(cursors)
	if err != nil {
		return err
	}
	if len(tables) == 0 && join == nil {
		<-ctx.Done()
		return ctx.Err()
	}

	idle := newSchedule(tables)
	fetchCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	results := make(chan result, s.cfg.Concurrency)
	inflight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Start every due read there is room for, most urgent first,
		// each under the poll budget.
		var wake time.Time
		for inflight < s.cfg.Concurrency {
			now := time.Now()
			var t *tableState
			if t, wake = idle.peek(now); t == nil {
				break
			}
			if r := s.polls.ReserveN(now, 1); r.DelayFrom(now) > 0 {
				wake = now.Add(r.DelayFrom(now))
				r.CancelAt(now)
				break
			}
			idle.take()
			inflight++
			wg.Add(1)
			check := !t.paging && !time.Now().Before(t.schemaDue)
			go func(t *tableState, l *layout, cur cursor) {
				defer wg.Done()
				var loaded *layout
				if l == nil {
					var err error
					if l, err = s.layout(fetchCtx, t.name); err != nil {
						results <- result{t: t, err: err}
						return
					}
					loaded = l
				}
				if check {
					l2, tbl, err := s.checkSchema(fetchCtx, t.name, l)
					results <- result{t: t, checked: true, l: l2, schema: tbl, err: err, loaded: loaded}
					return
				}
				p, err := s.readPage(fetchCtx, l, cur.Link, cur.Max+1)
				results <- result{t: t, p: p, err: err, loaded: loaded}
			}(t, t.l, t.cur)
		}
		var wakeC <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			wakeC = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wakeC:
		case c := <-join:
			joined, err := add(c)
			if err != nil {
				return err
			}
			for _, t := range joined {
				idle.put(t)
			}
		case r := <-results:
			inflight--
			if r.loaded != nil {
				r.t.l = r.loaded
			}
			if r.err != nil {
				return r.err
			}
			if r.checked {
				if err := s.deliverSchema(ctx, r, emit); err != nil {
					return err
				}
			} else if err := s.deliver(ctx, r.t, r.p, emit); err != nil {
				return err
			}
			idle.put(r.t)
		}
	}
}

// deliver emits one page of t and schedules t's next read.
func (s *Source) deliver(ctx context.Context, t *tableState, p *page, emit func(context.Context, source.Batch) error) error {
	next := cursor{Max: max(t.cur.Max, p.maxVersion), Delta: true}
	link := p.next
	if link == "" {
		link = p.delta
	}
	var err error
	if next.Link, err = relativeLink(link); err != nil {
		return &DecodeError{Table: t.name, Err: fmt.Errorf("paging link: %w", err)}
	}
	b := source.Batch{Changes: p.changes, Cursors: map[string]string{t.name: next.String()}}
	s.cfg.Logger.Debug("dataverse delta page", "table", t.name, "changes", len(p.changes), "more", p.next != "", "interval", t.interval)
	if err := emit(ctx, b); err != nil {
		return err
	}
	t.cur = next
	t.changed = t.changed || len(p.changes) > 0
	t.paging = p.next != ""
	now := time.Now()
	switch {
	case p.next != "":
		// The delta read has more pages: fetch them at once.
		t.due = now
	case t.changed:
		t.interval = s.cfg.PollInterval
		t.due, t.changed = now.Add(t.interval), false
	default:
		t.interval = min(2*t.interval, s.cfg.MaxPollInterval)
		t.due = now.Add(t.interval)
	}
	return nil
}

// checkSchema reads the table's layout again and, when its columns
// changed, describes it afresh. It returns nils when nothing changed.
func (s *Source) checkSchema(ctx context.Context, table string, old *layout) (*layout, *schema.Table, error) {
	l, t, types, err := s.readLayout(ctx, table)
	if err != nil || sameFields(old, l) {
		return nil, nil, err
	}
	if err := s.readChoices(ctx, t, types); err != nil {
		return nil, nil, err
	}
	return l, t, nil
}

// sameFields tells whether two layouts read the same columns the same way,
// whatever their order.
func sameFields(a, b *layout) bool {
	if len(a.fields) != len(b.fields) {
		return false
	}
	for _, f := range a.fields {
		i, ok := b.byWire[f.wire]
		if !ok {
			return false
		}
		g := b.fields[i]
		if f.Name != g.Name || f.Type != g.Type || f.MaxLength != g.MaxLength || f.Precision != g.Precision || f.Scale != g.Scale {
			return false
		}
	}
	return true
}

// deliverSchema ends a schema check: when the columns changed, it emits the
// new description with a delta link that selects the new columns.
func (s *Source) deliverSchema(ctx context.Context, r result, emit func(context.Context, source.Batch) error) error {
	t := r.t
	t.schemaDue = time.Now().Add(s.cfg.SchemaInterval)
	if r.l == nil {
		return nil
	}
	next := t.cur
	next.Link = withSelect(t.cur.Link, r.l.selectList())
	s.cfg.Logger.Info("dataverse table columns changed", "table", t.name, "columns", len(r.schema.Columns))
	b := source.Batch{Cursors: map[string]string{t.name: next.String()}, Schemas: map[string]*schema.Table{t.name: r.schema}}
	if err := emit(ctx, b); err != nil {
		return err
	}
	t.cur, t.l = next, r.l
	s.mu.Lock()
	s.layouts[t.name] = r.l
	s.mu.Unlock()
	return nil
}

// withSelect replaces the $select of a relative link, keeping every other
// parameter (the delta token) byte for byte.
func withSelect(link, sel string) string {
	path, query, _ := strings.Cut(link, "?")
	params := strings.Split(query, "&")
	replaced := false
	for i, p := range params {
		if strings.HasPrefix(p, "$select=") || strings.HasPrefix(p, "%24select=") {
			params[i] = "$select=" + url.QueryEscape(sel)
			replaced = true
		}
	}
	if !replaced {
		params = append(params, "$select="+url.QueryEscape(sel))
	}
	if query == "" {
		params = params[1:]
	}
	return path + "?" + strings.Join(params, "&")
}

// schedule holds the tables without a read in flight: picking the next
// read costs O(log n), not a scan of every table per read (#16). Tables
// not yet due wait by due time; once due they are ready, ordered by
// deadline (deadline): when the poll budget cannot read every table each
// MaxPollInterval, idle tables queue, and a table that just changed (a
// short interval) must not wait behind them, while an idle table that
// waited longer than its interval is overtaken by no one, so none starves.
type schedule struct {
	waiting, ready tableHeap
}

func newSchedule(tables []*tableState) *schedule {
	s := &schedule{waiting: tableHeap{ts: slices.Clone(tables), less: dueFirst}, ready: tableHeap{less: deadlineFirst}}
	heap.Init(&s.waiting)
	return s
}

// peek returns the table to read at now, or nil and when the first table
// is due (zero when there is none).
func (s *schedule) peek(now time.Time) (*tableState, time.Time) {
	for s.waiting.Len() > 0 && !s.waiting.ts[0].due.After(now) {
		heap.Push(&s.ready, heap.Pop(&s.waiting))
	}
	if s.ready.Len() > 0 {
		return s.ready.ts[0], time.Time{}
	}
	if s.waiting.Len() > 0 {
		return nil, s.waiting.ts[0].due
	}
	return nil, time.Time{}
}

// take removes the table peek returned.
func (s *schedule) take() { heap.Pop(&s.ready) }

// put schedules t again, at its new due time.
func (s *schedule) put(t *tableState) { heap.Push(&s.waiting, t) }

// deadline is when t should have been read at the latest: its due time
// plus its interval; a table with more pages to read comes before every
// table that has none (its read is half done).
func (t *tableState) deadline() time.Time {
	if t.paging {
		return t.due.Add(-time.Hour)
	}
	return t.due.Add(t.interval)
}

func dueFirst(a, b *tableState) bool {
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.order < b.order
}

func deadlineFirst(a, b *tableState) bool {
	if da, db := a.deadline(), b.deadline(); !da.Equal(db) {
		return da.Before(db)
	}
	return a.order < b.order
}

// tableHeap is a heap.Interface of tables in the order of less.
type tableHeap struct {
	ts   []*tableState
	less func(a, b *tableState) bool
}

func (h *tableHeap) Len() int           { return len(h.ts) }
func (h *tableHeap) Less(i, j int) bool { return h.less(h.ts[i], h.ts[j]) }
func (h *tableHeap) Swap(i, j int)      { h.ts[i], h.ts[j] = h.ts[j], h.ts[i] }
func (h *tableHeap) Push(x any)         { h.ts = append(h.ts, x.(*tableState)) }
func (h *tableHeap) Pop() any {
	t := h.ts[len(h.ts)-1]
	h.ts[len(h.ts)-1] = nil
	h.ts = h.ts[:len(h.ts)-1]
	return t
}
