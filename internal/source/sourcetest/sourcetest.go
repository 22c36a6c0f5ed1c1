// Package sourcetest is the contract suite of package source: the tests
// every source connector runs, unchanged, against a real server of its kind
// (Dataverse through the emulator, PostgreSQL through a pgtest cluster). A
// connector's test builds an Env per subtest and calls Run; what the suite
// checks is what source.Source's doc comment promises, so a new connector
// is held to the same contract on its first day.
//
// It imports package source and the standard library's testing only; the
// connector and its server are the caller's.
package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// Env is one fresh source environment, for one subtest.
type Env struct {
	// Open connects a new Source to the environment; every call is a new
	// one, as after a restart of lakelink. The caller closes it on
	// t.Cleanup.
	Open func(t *testing.T) source.Source
	// Table is a tracked table holding Rows rows (at least 3), which a
	// Source from Open copies in at least three batches (a small page or
	// batch size).
	Table string
	Rows  int
	// Untracked is a table Describe refuses with a *source.NotTrackedError
	// and Tables lists as not tracked.
	Untracked string
	// Insert adds a row to Table and returns its ID as changes carry it;
	// Update changes a column of row id; Delete removes it. Each commits
	// before it returns.
	Insert func(t *testing.T) string
	Update func(t *testing.T, id string)
	Delete func(t *testing.T, id string)
	// Expire makes every cursor taken so far unusable at the source (a
	// delta token past its age, a dropped replication slot); src is a
	// Source from Open on which no Copy or Stream runs.
	Expire func(t *testing.T, src source.Source)
}

// wait bounds how long the suite waits for a change to arrive, and for a
// cancelled Copy or Stream to return.
const (
	wait   = 30 * time.Second
	prompt = 5 * time.Second
)

// Run runs the contract tests, each as a subtest on its own Env from
// newEnv.
func Run(t *testing.T, newEnv func(t *testing.T) *Env) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *Env)
	}{
		{"Tables", testTables},
		{"Describe", testDescribe},
		{"Copy", testCopy},
		{"CopyResume", testCopyResume},
		{"StreamOrder", testStreamOrder},
		{"StreamRestart", testStreamRestart},
		{"CursorExpired", testCursorExpired},
		{"CopyCancel", testCopyCancel},
		{"StreamCancel", testStreamCancel},
		{"Optional", testOptional},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newEnv(t)) })
	}
}

func testTables(t *testing.T, e *Env) {
	tables, err := e.Open(t).Tables(context.Background())
	if err != nil {
		t.Fatalf("Tables: %v", err)
	}
	want := map[string]bool{e.Table: true, e.Untracked: false}
	for _, ti := range tables {
		if tracked, ok := want[ti.Name]; ok {
			if ti.Tracked != tracked {
				t.Errorf("Tables lists %s with Tracked %v, want %v", ti.Name, ti.Tracked, tracked)
			}
			delete(want, ti.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("Tables does not list %v (it lists %v)", want, tables)
	}
}

func testDescribe(t *testing.T, e *Env) {
	s := e.Open(t)
	d, err := s.Describe(context.Background(), e.Table)
	if err != nil {
		t.Fatalf("Describe(%s): %v", e.Table, err)
	}
	if len(d.Key) == 0 || len(d.Columns) == 0 {
		t.Fatalf("Describe(%s): key %v, %d columns; want both", e.Table, d.Key, len(d.Columns))
	}
	for _, k := range d.Key {
		if _, ok := d.Column(k); !ok {
			t.Errorf("Describe(%s): key column %s is not among the columns", e.Table, k)
		}
	}
	_, err = s.Describe(context.Background(), e.Untracked)
	var nt *source.NotTrackedError
	if !errors.As(err, &nt) || nt.Table != e.Untracked || nt.Fix == "" {
		t.Errorf("Describe(%s) = %v; want a *source.NotTrackedError naming it, with a fix", e.Untracked, err)
	}
}

// collector records what emit accepted. fail, when set, is what emit
// returns for the batch of index failAt instead of accepting it.
type collector struct {
	table  string
	mu     sync.Mutex
	bs     []source.Batch
	failAt int
	fail   error
	// seen is signalled after each accepted batch.
	seen chan struct{}
}

func newCollector(table string) *collector {
	return &collector{table: table, seen: make(chan struct{}, 1)}
}

func (c *collector) emit(_ context.Context, b source.Batch) error {
	c.mu.Lock()
	if c.fail != nil && len(c.bs) == c.failAt {
		c.mu.Unlock()
		return c.fail
	}
	c.bs = append(c.bs, b)
	c.mu.Unlock()
	select {
	case c.seen <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) batches() []source.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bs)
}

// cursor is the table's cursor after the last accepted batch that moved
// it: what the engine would have committed.
func (c *collector) cursor() string {
	bs := c.batches()
	for i := len(bs) - 1; i >= 0; i-- {
		if cur := bs[i].Cursors[c.table]; cur != "" {
			return cur
		}
	}
	return ""
}

// changes returns the accepted changes of the table, in delivery order.
func (c *collector) changes() []source.Change {
	var out []source.Change
	for _, b := range c.batches() {
		for _, ch := range b.Changes {
			if ch.Table == c.table {
				out = append(out, ch)
			}
		}
	}
	return out
}

// until waits until cond holds on the accepted changes.
func (c *collector) until(t *testing.T, what string, cond func([]source.Change) bool) {
	t.Helper()
	deadline := time.After(wait)
	for !cond(c.changes()) {
		select {
		case <-c.seen:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not delivered within %v (delivered: %d changes)", what, wait, len(c.changes()))
		}
	}
}

// copyTable copies the table afresh and returns the accepted batches.
func copyTable(t *testing.T, s source.Source, table string) *collector {
	t.Helper()
	c := newCollector(table)
	if err := s.Copy(context.Background(), table, "", c.emit); err != nil {
		t.Fatalf("Copy(%s): %v", table, err)
	}
	return c
}

// ids returns the distinct IDs of the changes.
func ids(chs []source.Change) map[string]source.Change {
	out := map[string]source.Change{}
	for _, ch := range chs {
		out[ch.ID] = ch
	}
	return out
}

func testCopy(t *testing.T, e *Env) {
	c := copyTable(t, e.Open(t), e.Table)
	bs := c.batches()
	if len(bs) < 3 {
		t.Fatalf("Copy(%s) gave %d batches; the Env promises at least 3", e.Table, len(bs))
	}
	for i, b := range bs {
		if b.Cursors[e.Table] == "" {
			t.Errorf("batch %d of %d carries no cursor for %s", i, len(bs), e.Table)
		}
		if b.Done != (i == len(bs)-1) {
			t.Errorf("batch %d of %d: Done = %v; only the last one is Done", i, len(bs), b.Done)
		}
		if b.Partial {
			t.Errorf("batch %d of %d is Partial; a copy's batches are not parts of a transaction", i, len(bs))
		}
	}
	rows := ids(c.changes())
	if len(rows) != e.Rows {
		t.Errorf("Copy(%s) delivered %d distinct rows, want %d", e.Table, len(rows), e.Rows)
	}
	for id, ch := range rows {
		if ch.Deleted || ch.Truncate || len(ch.Values) != len(ch.Columns) || len(ch.Columns) == 0 {
			t.Fatalf("row %s: Deleted %v, Truncate %v, %d values for %d columns", id, ch.Deleted, ch.Truncate, len(ch.Values), len(ch.Columns))
		}
	}
}

// errStop is what an emit returns to end a Copy half way, as a failed
// lake commit does.
var errStop = errors.New("sourcetest: the lake refused the batch")

func testCopyResume(t *testing.T, e *Env) {
	s := e.Open(t)
	first := newCollector(e.Table)
	first.failAt, first.fail = 1, errStop
	if err := s.Copy(context.Background(), e.Table, "", first.emit); !errors.Is(err, errStop) {
		t.Fatalf("Copy(%s) whose emit failed on the second batch = %v, want emit's error", e.Table, err)
	}
	resume := first.cursor()
	if len(first.batches()) != 1 || resume == "" {
		t.Fatalf("before the failure: %d batches, cursor %q; want 1 batch with a cursor", len(first.batches()), resume)
	}
	rest := newCollector(e.Table)
	if err := s.Copy(context.Background(), e.Table, resume, rest.emit); err != nil {
		t.Fatalf("Copy(%s) resumed from %q: %v", e.Table, resume, err)
	}
	bs := rest.batches()
	if len(bs) == 0 || !bs[len(bs)-1].Done {
		t.Fatalf("the resumed Copy did not end with a Done batch (%d batches)", len(bs))
	}
	rows := ids(append(first.changes(), rest.changes()...))
	if len(rows) != e.Rows {
		t.Errorf("first batch and resumed Copy together delivered %d distinct rows, want %d", len(rows), e.Rows)
	}
}

// stream runs Stream in the background until stop is called.
type stream struct {
	cancel context.CancelFunc
	done   chan error
}

func startStream(s source.Source, cursors map[string]string, c *collector) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	st := &stream{cancel: cancel, done: make(chan error, 1)}
	go func() { st.done <- s.Stream(ctx, cursors, c.emit) }()
	return st
}

// stop cancels the Stream, which must end promptly with the context's
// error.
func (st *stream) stop(t *testing.T) {
	t.Helper()
	st.cancel()
	select {
	case err := <-st.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream ended with %v, want context.Canceled", err)
		}
	case <-time.After(prompt):
		t.Fatalf("Stream still running %v after its context was cancelled", prompt)
	}
}

// streamCursor copies the table and returns the cursor Stream starts from.
func streamCursor(t *testing.T, s source.Source, table string) (string, map[string]source.Change) {
	t.Helper()
	c := copyTable(t, s, table)
	return c.cursor(), ids(c.changes())
}

// latest returns the change of id with the highest Version, and whether
// the versions of id's changes strictly increase in delivery order.
func latest(chs []source.Change, id string) (source.Change, bool, bool) {
	var last source.Change
	found, increasing := false, true
	for _, ch := range chs {
		if ch.ID != id {
			continue
		}
		if found && ch.Version <= last.Version {
			increasing = false
		}
		last, found = ch, true
	}
	return last, found, increasing
}

func testStreamOrder(t *testing.T, e *Env) {
	s := e.Open(t)
	cursor, copied := streamCursor(t, s, e.Table)
	var victim string
	for id := range copied {
		victim = id
		break
	}
	c := newCollector(e.Table)
	st := startStream(s, map[string]string{e.Table: cursor}, c)
	defer st.stop(t)

	id := e.Insert(t)
	c.until(t, "the insert of "+id, func(chs []source.Change) bool {
		ch, ok, _ := latest(chs, id)
		return ok && !ch.Deleted
	})
	inserted, _, _ := latest(c.changes(), id)
	if len(inserted.Values) != len(inserted.Columns) || len(inserted.Columns) == 0 {
		t.Errorf("insert of %s: %d values for %d columns", id, len(inserted.Values), len(inserted.Columns))
	}
	e.Update(t, id)
	c.until(t, "the update of "+id, func(chs []source.Change) bool {
		ch, _, _ := latest(chs, id)
		return ch.Version > inserted.Version
	})
	e.Delete(t, victim)
	c.until(t, "the delete of "+victim, func(chs []source.Change) bool {
		ch, ok, _ := latest(chs, victim)
		return ok && ch.Deleted
	})
	e.Delete(t, id)
	c.until(t, "the delete of "+id, func(chs []source.Change) bool {
		ch, _, _ := latest(chs, id)
		return ch.Deleted
	})
	chs := c.changes()
	for _, x := range []string{id, victim} {
		if _, _, increasing := latest(chs, x); !increasing {
			t.Errorf("the versions of %s do not strictly increase in delivery order", x)
		}
	}
	if del, _, _ := latest(chs, victim); del.Version <= copied[victim].Version {
		t.Errorf("delete of %s has version %d, not above the copied version %d", victim, del.Version, copied[victim].Version)
	}
	if ch, _, _ := latest(chs, id); ch.Values != nil {
		t.Errorf("delete of %s carries values %v", id, ch.Values)
	}
	// Caught up: an empty batch reports the table at a cursor.
	before := len(c.batches())
	deadline := time.Now().Add(wait)
	for {
		bs := c.batches()
		if i := slices.IndexFunc(bs[before:], func(b source.Batch) bool { return len(b.Changes) == 0 && b.Cursors[e.Table] != "" }); i >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no empty batch reported %s caught up within %v", e.Table, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testStreamRestart(t *testing.T, e *Env) {
	s := e.Open(t)
	cursor, _ := streamCursor(t, s, e.Table)
	c := newCollector(e.Table)
	st := startStream(s, map[string]string{e.Table: cursor}, c)
	before := e.Insert(t)
	c.until(t, "the insert of "+before, func(chs []source.Change) bool { _, ok, _ := latest(chs, before); return ok })
	st.stop(t)
	// Every batch emit accepted is committed: the engine restarts from
	// the last cursor it saw, with a new Source.
	committed := c.cursor()
	old, _, _ := latest(c.changes(), before)
	after := e.Insert(t)
	e.Update(t, before)

	again := newCollector(e.Table)
	st = startStream(e.Open(t), map[string]string{e.Table: committed}, again)
	defer st.stop(t)
	again.until(t, "the insert and the update made while no Stream ran", func(chs []source.Change) bool {
		_, gotAfter, _ := latest(chs, after)
		b, _, _ := latest(chs, before)
		return gotAfter && b.ID == before && !b.Deleted && b.Version > old.Version
	})
}

func testCursorExpired(t *testing.T, e *Env) {
	s := e.Open(t)
	cursor, _ := streamCursor(t, s, e.Table)
	e.Expire(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := e.Open(t).Stream(ctx, map[string]string{e.Table: cursor}, func(context.Context, source.Batch) error { return nil })
	var ce *source.CursorExpiredError
	if !errors.As(err, &ce) || ce.Table != e.Table || !errors.Is(err, source.ErrCursorExpired) {
		t.Fatalf("Stream from an expired cursor = %v; want a *source.CursorExpiredError naming %s", err, e.Table)
	}
}

// cancelOnFirst returns an emit that accepts the first batch and cancels
// ctx, and a channel closed when it did.
func cancelOnFirst(cancel context.CancelFunc) (func(context.Context, source.Batch) error, chan struct{}) {
	first := make(chan struct{})
	var once sync.Once
	return func(context.Context, source.Batch) error {
		once.Do(func() {
			cancel()
			close(first)
		})
		return nil
	}, first
}

// returnsPromptly checks that run, whose context was cancelled when
// cancelled closed, returns the context's error within prompt.
func returnsPromptly(t *testing.T, what string, cancelled chan struct{}, done chan error) {
	t.Helper()
	var err error
	select {
	case <-cancelled:
		select {
		case err = <-done:
		case <-time.After(prompt):
			t.Fatalf("%s still running %v after its context was cancelled", what, prompt)
		}
	case err = <-done:
		select {
		case <-cancelled:
		default:
			t.Fatalf("%s ended before its first batch: %v", what, err)
		}
	case <-time.After(wait):
		t.Fatalf("%s delivered no batch within %v", what, wait)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%s ended with %v after its context was cancelled, want context.Canceled", what, err)
	}
}

func testCopyCancel(t *testing.T, e *Env) {
	s := e.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emit, first := cancelOnFirst(cancel)
	done := make(chan error, 1)
	go func() { done <- s.Copy(ctx, e.Table, "", emit) }()
	returnsPromptly(t, fmt.Sprintf("Copy(%s)", e.Table), first, done)
}

func testStreamCancel(t *testing.T, e *Env) {
	s := e.Open(t)
	cursor, _ := streamCursor(t, s, e.Table)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emit, first := cancelOnFirst(cancel)
	done := make(chan error, 1)
	go func() { done <- s.Stream(ctx, map[string]string{e.Table: cursor}, emit) }()
	// An idle Stream's first batch is the one reporting the table caught
	// up; a change makes sure there is one either way.
	e.Insert(t)
	returnsPromptly(t, fmt.Sprintf("Stream(%s)", e.Table), first, done)
}

// testOptional checks the optional interfaces' contracts on a source that
// implements them.
func testOptional(t *testing.T, e *Env) {
	s := e.Open(t)
	hr, health := s.(source.HealthReporter)
	lc, lifecycle := s.(source.Lifecycle)
	if !health && !lifecycle {
		return
	}
	cursor, _ := streamCursor(t, s, e.Table)
	if health {
		h, err := hr.Health(context.Background())
		if err != nil || h.Retained < 0 || h.Lag < 0 {
			t.Errorf("Health after a copy = %+v, %v; want a report", h, err)
		}
	}
	if !lifecycle {
		return
	}
	for i := range 2 {
		if err := lc.Deleted(context.Background()); err != nil {
			t.Fatalf("Deleted, call %d: %v (it must be idempotent)", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := e.Open(t).Stream(ctx, map[string]string{e.Table: cursor}, func(context.Context, source.Batch) error { return nil })
	var ce *source.CursorExpiredError
	if !errors.As(err, &ce) || ce.Table != e.Table {
		t.Errorf("Stream after Deleted = %v; want a *source.CursorExpiredError naming %s", err, e.Table)
	}
	if health {
		if h, err := hr.Health(context.Background()); err == nil {
			t.Errorf("Health after Deleted = %+v; want an error saying there is nothing to report on", h)
		}
	}
}
