// Package engine is the engine of a link: it copies each table once, then
// streams its changes, committing every batch to the lake together with the
// source cursor that follows it, and keeps a status for every table.
//
// Invariants the engine keeps (the lake keeps the others, see
// docs/commit-protocol.md):
//   - A batch is committed with the cursor that follows it, in one commit, so
//     a restart resumes exactly after the last committed batch.
//   - A commit that has started is finished even when the sync is being
//     stopped: commits run under a context that SIGINT does not cancel.
//   - The engine never holds more than one batch per table in memory.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// Spec is one table of the link profile.
type Spec struct {
	Name    string
	Options lake.TableOptions
}

// Progress shows initial copies as they run (progress bars in a terminal).
// Its methods are called from several goroutines.
type Progress interface {
	Copying(table string)
	Copied(table string, rows int)
	CopyDone(table string, err error)
}

// Config tunes an Engine.
type Config struct {
	Tables []Spec
	// Workers bounds the initial copies that run at once.
	Workers int
	// Once makes Run return as soon as every table is up to date.
	Once bool
	// Reinit names tables to copy afresh before syncing.
	Reinit []string
	// MaintainEvery is how often the lake's deferred work runs; default 1s.
	MaintainEvery time.Duration
	// CursorEvery bounds how long an idle table's newer cursor stays
	// uncommitted, and how old the committed StreamSynced of an idle
	// stream gets; default 10m. The idle tables' newer cursors are
	// committed together, in one commit every CursorEvery: an idle
	// table's older cursor names the same data, so a restart from it reads
	// nothing again, and Dataverse delta tokens stay valid for days
	// (ExpireChangeTrackingInDays, 30 by default).
	CursorEvery time.Duration
	Logger      *slog.Logger
	Progress    Progress
}

// Engine runs one link.
type Engine struct {
	cfg Config
	log *slog.Logger

	src source.Source
	lk  *lake.Lake
	st  store.Store

	// commitCtx outlives the Run context so that a batch handed to the lake
	// is committed whole when the sync is being stopped.
	commitCtx context.Context

	mu       gosync.Mutex
	specs    []Spec
	tables   map[string]*table
	copyq    chan string
	streamCh chan struct{}
	specCh   chan struct{}
	// streamed is set when the change stream commits a batch: the
	// stream works, so its next failure backs off from the start.
	streamed atomic.Bool
	// streamStarts counts the change streams started (Stream or
	// StreamJoin calls).
	streamStarts atomic.Int64
	// reconciled is closed once every table of the profile has been looked
	// at: the change stream starts only then, so that tables whose copies
	// are done join it together and a source transaction spanning them is
	// applied to all of them in one commit.
	reconciled chan struct{}
	// statusWritten is the table list last published; only statusLoop
	// uses it, and Run after statusLoop ended.
	statusWritten []byte
	// lakeFault is the lake's own failure (writes refused: a read-only
	// folder, a full disk) while it lasts: the last failed commit's
	// error, or the failed write of the live status, and since when.
	// Every table that is not Failed or Paused shows LakeUnwritable
	// meanwhile. A commit that succeeds clears commitFault; a status
	// written to the lake clears statusFault.
	commitFault, statusFault fault
	// maintainFault is the lake maintenance failing, while it does.
	maintainFault fault
	// fellBack is set while the live status goes to the fallback file
	// (fallbackStatusPath).
	fellBack bool
	// toDescribe lists the tables streaming from their committed
	// description, to describe afresh (describeQueued); only
	// reconcileLoop uses it.
	toDescribe []string
	// cursorsCommitted is when the idle tables' newer cursors were last
	// committed (table.idleCursor); only onStream uses it.
	cursorsCommitted time.Time
	// txStages holds, per table, the parts of the source transaction in
	// flight (source.Batch.Partial), staged until the batch that ends the
	// transaction commits them all at once. Only the stream's emitter
	// (onStream) uses it, and streamLoop once that Stream has returned.
	txStages map[string]*lake.Stage
}

// fault is a failure that lasts until something succeeds again.
type fault struct {
	err   string
	since time.Time
}

// set records err, keeping since when it started.
func (f *fault) set(err error, now time.Time) {
	if f.err == "" {
		f.since = now
	}
	f.err = err.Error()
}

func (f *fault) clear() { *f = fault{} }

// lakeFault is the lake's failure, commits first.
func (e *Engine) lakeFault() fault {
	if e.commitFault.err != "" {
		return e.commitFault
	}
	return e.statusFault
}

// table is the engine's live view of one table. Guarded by Engine.mu.
type table struct {
	spec  Spec
	state State
	// since is when state was last set to a different state.
	since  time.Time
	copied int64
	err    string
	// wait is Throttled or SourceUnreachable while the source retries
	// the table's reads, with waitErr and waitSince; "" otherwise.
	wait      State
	waitErr   string
	waitSince time.Time
	streaming bool
	// epoch counts the times the table started streaming (stream): a
	// change stream that follows it since an earlier epoch must not go on
	// with it, its cursor is no longer the table's.
	epoch int
	// caughtUp is when the source last said the table was current.
	caughtUp time.Time
	// idleCursor is a newer cursor of the table the stream delivered
	// without changes and that is not committed yet ("" when none): the
	// committed one names the same data. Reset when the table (re)joins
	// the stream.
	idleCursor string
	cancelCopy context.CancelFunc
	// define is a new table's definition, committed with the first batch
	// of its copy rather than on its own (one commit less per table).
	define *lake.Definition
	// undescribed is open while the table streams from its committed
	// description and the source has not described it afresh yet (see
	// redescribe); describing is set while that runs.
	undescribed chan struct{}
	describing  bool
	// reinit says why the running copy is a fresh copy built beside the
	// table's committed data (state Reinitialising), "" for a first copy.
	reinit string
}

// setState moves t to state s, noting since when.
func (t *table) setState(s State) {
	if t.state != s || t.since.IsZero() {
		t.since = time.Now()
	}
	t.state = s
}

// stream makes t stream from its committed cursor: it joins the running
// change stream, or the next one.
func (t *table) stream() {
	t.streaming = true
	t.epoch++
	t.idleCursor = ""
}

// setWait shows the source's retries of t's reads as state s (Throttled,
// SourceUnreachable) with reason, or ends them (s == "").
func (t *table) setWait(s State, reason string) {
	if s != t.wait {
		t.waitSince = time.Now()
	}
	t.wait, t.waitErr = s, reason
}

// New returns an engine for cfg. Pass it as the source's Events so that
// throttling shows in the status.
func New(cfg Config) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaintainEvery <= 0 {
		cfg.MaintainEvery = time.Second
	}
	if cfg.CursorEvery <= 0 {
		cfg.CursorEvery = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		specs:      cfg.Tables,
		tables:     map[string]*table{},
		copyq:      make(chan string, 4096),
		streamCh:   make(chan struct{}, 1),
		specCh:     make(chan struct{}, 1),
		reconciled: make(chan struct{}),
		txStages:   map[string]*lake.Stage{},
	}
}

// Throttled implements source.Events.
func (e *Engine) Throttled(name, reason string) {
	e.update(name, func(t *table) { t.setWait(Throttled, reason) })
}

// Unreachable implements source.Events.
func (e *Engine) Unreachable(name, reason string) {
	e.update(name, func(t *table) { t.setWait(SourceUnreachable, reason) })
}

// Unthrottled implements source.Events.
func (e *Engine) Unthrottled(name string) {
	e.update(name, func(t *table) { t.setWait("", "") })
}

// SetTables replaces the linked tables of a running engine (the profile was
// edited): new tables are copied, removed ones leave the lake.
func (e *Engine) SetTables(specs []Spec) {
	e.mu.Lock()
	e.specs = specs
	e.mu.Unlock()
	signal(e.specCh)
}

func (e *Engine) update(name string, f func(*table)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tables[name]; ok {
		f(t)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends (or, with Config.Once, until every table is up to
// date or failed). It returns an error only when the link cannot go on at
// all (the lake cannot be written, another sync owns it); a table's failure
// shows in its status.
func (e *Engine) Run(ctx context.Context, src source.Source, lk *lake.Lake, st store.Store) error {
	// Under mu: Status may be called from the start, and reads lk.
	e.mu.Lock()
	e.src, e.lk, e.st = src, lk, st
	e.mu.Unlock()
	e.commitCtx = context.WithoutCancel(ctx)
	e.cursorsCommitted = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	for _, name := range e.cfg.Reinit {
		ts, ok := lk.State().Tables[name]
		if !ok {
			return fmt.Errorf("--reinit %s: the lake has no such table", name)
		}
		const why = "re-initialised on request (--reinit)"
		if hasData(ts) {
			// Copied afresh beside its data, which readers keep seeing
			// until the copy is swapped in; recorded, so that a
			// restart before then copies it afresh again (#15 case 3).
			if err := e.commit(lake.TableTx{Name: name, Reinit: why}); err != nil {
				return err
			}
			continue
		}
		tx := lake.TableTx{Name: name, Reset: why}
		// The reset carries the table's current description, so that a
		// change the layout cannot follow in place (a column's type) is
		// applied by it rather than refused again (#15 case 6).
		for _, sp := range e.cfg.Tables {
			if sp.Name != name {
				continue
			}
			desc, err := src.Describe(ctx, name)
			if err != nil {
				return fmt.Errorf("--reinit %s: %w", name, err)
			}
			tx.Define = &lake.Definition{Source: desc, Options: sp.Options}
		}
		if err := e.commit(tx); err != nil {
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return e.reconcileLoop(gctx) })
	g.Go(func() error { return e.streamLoop(gctx) })
	g.Go(func() error { return e.maintainLoop(gctx) })
	g.Go(func() error { return e.statusLoop(gctx) })
	for range e.cfg.Workers {
		g.Go(func() error { return e.copyWorker(gctx) })
	}
	if e.cfg.Once {
		g.Go(func() error { return e.untilDone(gctx, cancel) })
	}
	err := g.Wait()
	if e.cfg.Once && (err == nil || errors.Is(err, context.Canceled)) {
		// A one-shot sync leaves a finished lake: first snapshots,
		// model.json and the metadata files written, compactions done.
		if merr := e.lk.Settle(e.commitCtx); merr != nil {
			err = fmt.Errorf("final lake maintenance: %w", merr)
		}
	}
	if werr := e.writeStatus(e.commitCtx, true); werr != nil {
		e.log.Warn("writing the final status", "err", werr)
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Status returns every table's current status.
func (e *Engine) Status() []TableStatus {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lk == nil {
		return nil // Run has not begun
	}
	state := e.lk.State()
	lf := e.lakeFault()
	out := make([]TableStatus, 0, len(e.tables))
	for name, t := range e.tables {
		s := TableStatus{Name: name, State: t.state, Since: t.since, Copied: t.copied, Error: t.err}
		if s.Error == "" && t.state == Reinitialising {
			s.Error = t.reinit
		}
		ts, inLake := state.Tables[name]
		if inLake {
			s.Rows = ts.Rows
			s.LastSynchronized = state.Synchronized(ts)
			switch {
			case s.Error != "":
			case ts.Reinit != "" && ts.Phase != lake.Failed:
				s.Error = ts.Reinit
			case ts.Phase == lake.Failed || reinitialising(ts):
				s.Error = ts.Reason
			}
		}
		if t.caughtUp.After(s.LastSynchronized) {
			s.LastSynchronized = t.caughtUp
		}
		if !s.LastSynchronized.IsZero() {
			s.Lag = Duration(now.Sub(s.LastSynchronized))
		}
		// The table's own stop outranks the link's troubles: it stays
		// whatever the lake or the source does. Then the lake (nothing
		// of any table commits), then the source's retries of this
		// table's reads.
		switch {
		case t.state == Failed || t.state == Paused:
		case lf.err != "":
			s.State, s.Error, s.Since = LakeUnwritable, lf.err, lf.since
		case t.wait != "":
			s.State, s.Error, s.Since = t.wait, t.waitErr, t.waitSince
		case t.state == InProgress && inLake && reinitialising(ts):
			s.State = Reinitialising
		}
		s.Action = action(s.State, name)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// commit commits tts in one lake commit, noting whether the lake took it:
// a failure that is no table's own (tableError) and no other writer's is
// the lake refusing writes, which the status shows until a commit passes.
func (e *Engine) commit(tts ...lake.TableTx) error {
	return e.commitTx(lake.Tx{Tables: tts})
}

// commitTx is commit for a whole Tx (the stream's carries its position).
func (e *Engine) commitTx(tx lake.Tx) error {
	_, err := e.lk.Commit(e.commitCtx, tx)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		e.commitFault.clear()
	case isLakeFault(err):
		e.commitFault.set(err, time.Now())
	}
	return err
}

// isLakeFault reports whether a commit error is the lake refusing writes, to
// be retried with back-off, rather than one table's fault (which stops
// that table) or another writer's commit (which stops the sync).
func isLakeFault(err error) bool {
	var ce *lake.ConflictError
	return err != nil && tableError(err) == "" && !errors.As(err, &ce) && !errors.Is(err, context.Canceled)
}

// reconcileLoop brings the set of synced tables in line with the profile, at
// start and whenever SetTables is called.
// A lake that refuses the commits of a round is retried with back-off; the
// change stream starts after the first round that passes.
func (e *Engine) reconcileLoop(ctx context.Context) error {
	first := true
	var wait time.Duration
	for {
		err := e.reconcile(ctx)
		if err == nil && first {
			close(e.reconciled)
			first = false
		}
		if err == nil {
			err = e.describeQueued(ctx)
		}
		var retry <-chan time.Time
		switch {
		case err == nil:
			wait = 0
		case ctx.Err() != nil:
			return ctx.Err()
		case !isLakeFault(err):
			return err
		default:
			wait = maintainBackoff(wait, time.Second, true)
			e.log.Error("the lake refuses a commit: retrying", "in", wait, "err", err)
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.specCh:
		case <-retry:
		}
	}
}

func (e *Engine) reconcile(ctx context.Context) error {
	e.mu.Lock()
	specs := append([]Spec(nil), e.specs...)
	e.mu.Unlock()
	want := map[string]bool{}
	// Tables to describe are described Workers at a time: one at a time,
	// the round trips of thousands of descriptions held every copy up
	// (5 requests a Dataverse table, #16).
	var g errgroup.Group
	g.SetLimit(e.cfg.Workers)
	for _, sp := range specs {
		want[sp.Name] = true
		if t := e.track(sp); t != nil {
			g.Go(func() error { return e.addTable(ctx, sp, t) })
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Tables removed from the profile stop syncing and leave the lake.
	e.mu.Lock()
	for name, t := range e.tables {
		if !want[name] {
			if t.cancelCopy != nil {
				t.cancelCopy()
			}
			delete(e.tables, name)
		}
	}
	e.mu.Unlock()
	for name := range e.lk.State().Tables {
		if want[name] {
			continue
		}
		e.log.Info("table removed from the profile: unlinking it", "table", name)
		if err := e.commit(lake.TableTx{Name: name, Drop: true}); err != nil {
			return err
		}
		signal(e.streamCh)
	}
	return nil
}

// track starts syncing sp unless it already is. It returns the table when
// it is to be described at the source first (addTable), nil otherwise.
func (e *Engine) track(sp Spec) *table {
	e.mu.Lock()
	if t, ok := e.tables[sp.Name]; ok && t.state != Failed {
		e.mu.Unlock()
		return nil
	}
	t := &table{spec: sp}
	t.setState(NotStarted)
	e.tables[sp.Name] = t
	// A table that was streaming when the link stopped streams again at
	// once, from its committed description, and is described afresh
	// after the round (describeQueued) or before its first changes are
	// committed (onStream), whichever comes first: a restart of
	// thousands of tables does not wait for thousands of descriptions
	// (#16). Its options can only have changed with its description
	// (append-only) or the profile, which is checked here.
	if ts := e.lk.State().Tables[sp.Name]; ts != nil && ts.Phase == lake.Completed && ts.Source != nil && ts.Reinit == "" &&
		ts.Options == e.lk.TableOptions(lake.Definition{Source: ts.Source, Options: sp.Options}) {
		t.setState(Completed)
		t.stream()
		t.undescribed = make(chan struct{})
		e.mu.Unlock()
		e.toDescribe = append(e.toDescribe, sp.Name)
		signal(e.streamCh)
		return nil
	}
	e.mu.Unlock()
	return t
}

// addTable describes a table track took up and copies it, streams it, or
// commits what its description changed first. Several run at once.
func (e *Engine) addTable(ctx context.Context, sp Spec, t *table) error {
	desc, err := e.src.Describe(ctx, sp.Name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.fail(sp.Name, err)
		return nil
	}
	ts := e.lk.State().Tables[sp.Name]
	if ts == nil {
		e.mu.Lock()
		t.define = &lake.Definition{Source: desc, Options: sp.Options}
		e.mu.Unlock()
		e.copyq <- sp.Name
		return nil
	}
	if tx := e.redefinition(sp, ts, desc); tx.Name != "" {
		if err := e.commit(tx); err != nil {
			if tableError(err) == sp.Name {
				e.pause(sp.Name, err)
				return nil
			}
			// Forgotten, so that the retry of the round looks at the
			// table again.
			e.mu.Lock()
			delete(e.tables, sp.Name)
			e.mu.Unlock()
			return err
		}
		ts = e.lk.State().Tables[sp.Name]
	}
	e.mu.Lock()
	if ts.Reinit != "" {
		t.setState(Reinitialising)
		t.reinit = ts.Reinit
		e.mu.Unlock()
		e.copyq <- sp.Name
		return nil
	}
	if ts.Phase == lake.Completed {
		t.setState(Completed)
		t.stream()
		e.mu.Unlock()
		signal(e.streamCh)
		return nil
	}
	if ts.Phase == lake.InProgress && ts.Cursor != "" {
		t.setState(InProgress)
	}
	e.mu.Unlock()
	// Sent without the lock: the copy workers take it.
	e.copyq <- sp.Name
	return nil
}

// redefinition is the commit a table the lake has as ts needs for the
// source's description desc: a copy afresh when its options changed (a
// Reinit beside its data, or a reset when it has none), a Define when the
// description did, nothing (Name "") otherwise or when the table is being
// copied afresh already (the copy takes desc: the old layout need not
// follow it).
func (e *Engine) redefinition(sp Spec, ts *lake.TableState, desc *schema.Table) lake.TableTx {
	switch {
	case ts.Reinit != "":
	case ts.Options != e.lk.TableOptions(lake.Definition{Source: desc, Options: sp.Options}):
		why := fmt.Sprintf("table options changed (%+v to %+v): copied afresh", ts.Options, sp.Options)
		if hasData(ts) {
			return lake.TableTx{Name: sp.Name, Reinit: why}
		}
		return lake.TableTx{Name: sp.Name, Define: &lake.Definition{Source: desc, Options: sp.Options}, Reset: why}
	case !sameSchema(ts.Source, desc):
		return lake.TableTx{Name: sp.Name, Define: &lake.Definition{Source: desc, Options: sp.Options}}
	}
	return lake.TableTx{}
}

// describeQueued describes afresh, one at a time, the tables that started
// streaming from their committed description (addTable), until none is
// left or the profile changed (the next round goes on with the rest).
func (e *Engine) describeQueued(ctx context.Context) error {
	for len(e.toDescribe) > 0 {
		if len(e.specCh) > 0 {
			return nil
		}
		if err := e.redescribe(ctx, e.toDescribe[0]); err != nil {
			return err
		}
		e.toDescribe = e.toDescribe[1:]
	}
	return nil
}

// redescribe describes a table that streams from its committed
// description and commits what changed, as addTable does before a table
// streams: a new description, or a reset and a copy afresh when its
// options changed. describeQueued and onStream both call it; the first
// does the work, the other waits for it. It returns an error only when the
// lake refuses the commit; the table is then described again later.
func (e *Engine) redescribe(ctx context.Context, name string) error {
	e.mu.Lock()
	t := e.tables[name]
	if t == nil || t.undescribed == nil {
		e.mu.Unlock()
		return nil
	}
	done := t.undescribed
	if t.describing {
		e.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.describing = true
	sp := t.spec
	e.mu.Unlock()
	err := e.describeStreaming(ctx, sp)
	e.mu.Lock()
	t.describing = false
	t.undescribed = nil
	if err != nil {
		t.undescribed = make(chan struct{})
	}
	close(done)
	e.mu.Unlock()
	return err
}

func (e *Engine) describeStreaming(ctx context.Context, sp Spec) error {
	desc, err := e.src.Describe(ctx, sp.Name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.fail(sp.Name, err)
		return nil
	}
	ts := e.lk.State().Tables[sp.Name]
	tx := lake.TableTx{}
	if ts != nil {
		tx = e.redefinition(sp, ts, desc)
	}
	if tx.Name == "" {
		return nil
	}
	if err := e.commit(tx); err != nil {
		if tableError(err) == sp.Name {
			e.pause(sp.Name, err)
			return nil
		}
		return err
	}
	if tx.Reset != "" || tx.Reinit != "" {
		e.update(sp.Name, func(t *table) {
			t.streaming, t.copied = false, 0
			t.setState(InProgress)
			if tx.Reinit != "" {
				t.setState(Reinitialising)
				t.reinit = tx.Reinit
			}
		})
		signal(e.streamCh)
		e.copyq <- sp.Name
	}
	return nil
}

// tableError returns the table a lake error is about when the error is one
// table's (data that does not fit its layout), or "" when the lake itself
// failed.
func tableError(err error) string {
	var ve *lake.ValueError
	var le *lake.LayoutError
	switch {
	case errors.As(err, &ve):
		return ve.Table
	case errors.As(err, &le):
		return le.Table
	}
	return ""
}

// sameSchema compares table descriptions as the lake stores them (JSON),
// so that differences a round trip through the lake erases do not count.
func sameSchema(a, b *schema.Table) bool {
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

// fail marks a table Failed with the error as its reason, in the status and,
// when the lake knows the table, in the lake too.
func (e *Engine) fail(name string, err error) {
	e.log.Error("table failed", "table", name, "err", err)
	e.update(name, func(t *table) { t.setState(Failed); t.err = err.Error(); t.streaming = false })
	if _, ok := e.lk.State().Tables[name]; ok {
		if cerr := e.commit(lake.TableTx{Name: name, Phase: lake.Failed, Reason: err.Error()}); cerr != nil {
			e.log.Error("recording the failure in the lake", "table", name, "err", cerr)
		}
	}
}

// pause stops a table whose source schema changed in a way its lake layout
// cannot follow in place (*lake.LayoutError): the table keeps its data and
// waits for `lakelink sync --reinit`, which the reason names; the other
// tables go on. In the lake it is Failed with that reason.
func (e *Engine) pause(name string, err error) {
	reason := fmt.Sprintf("%v; run lakelink sync -c <profile> --reinit %s", err, name)
	e.log.Error("table paused", "table", name, "err", err)
	e.update(name, func(t *table) { t.setState(Paused); t.err = reason; t.streaming = false })
	if ts, ok := e.lk.State().Tables[name]; ok && ts.Reason != reason {
		if cerr := e.commit(lake.TableTx{Name: name, Phase: lake.Failed, Reason: reason}); cerr != nil {
			e.log.Error("recording the pause in the lake", "table", name, "err", cerr)
		}
	}
}

// stop takes a table out of the link for an error of its own: Paused for a
// layout change, Failed otherwise.
func (e *Engine) stop(name string, err error) {
	var le *lake.LayoutError
	if errors.As(err, &le) {
		e.pause(name, err)
		return
	}
	e.fail(name, err)
}

// copyWorker runs the copies of the queue. A copy the lake refuses (a
// read-only folder, a full disk) is retried with back-off, resuming from
// its last commit, until the lake takes it.
func (e *Engine) copyWorker(ctx context.Context) error {
	for {
		var name string
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name = <-e.copyq:
		}
		for wait := time.Duration(0); ; {
			err := e.copyTable(ctx, name)
			if err == nil || ctx.Err() != nil {
				break
			}
			if !isLakeFault(err) {
				return err
			}
			// Staged files fail before any commit: the lake's fault all
			// the same.
			e.mu.Lock()
			e.commitFault.set(err, time.Now())
			e.mu.Unlock()
			wait = maintainBackoff(wait, time.Second, true)
			e.log.Error("the lake refuses the copy: retrying", "table", name, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
}

// copyCommitEvery bounds the copy work a crash can lose: staged rows are
// committed at least this often.
const copyCommitEvery = 10 * time.Second

// copyAttempts bounds the retries of a copy that fails for a reason other
// than an expired cursor before the table is marked Failed.
const copyAttempts = 5

// copyTable runs the initial copy of one table, resuming from the committed
// cursor when there is one. A table with committed data (a re-copy: an
// expired cursor, --reinit, changed options, a retry of a Failed table, a
// copy restarted from the beginning) is copied afresh beside that data
// into one replacement stage, which the copy's last batch swaps in with
// one commit: readers see the old data until then, never an empty or
// partial table (#15 case 3). Such a copy commits nothing before its end,
// so a restart copies the table afresh again. It returns an error only for
// lake failures.
func (e *Engine) copyTable(ctx context.Context, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	t, ok := e.tables[name]
	if !ok {
		e.mu.Unlock()
		return nil
	}
	if t.state != Reinitialising {
		t.setState(InProgress)
	}
	t.cancelCopy = cancel
	e.mu.Unlock()
	if e.cfg.Progress != nil {
		e.cfg.Progress.Copying(name)
	}
	c := &tableCopy{e: e, name: name, t: t}
	copyErr, err := c.run(ctx)
	switch {
	case errors.Is(err, errCopyDropped):
		return nil
	case err != nil:
		return err
	}
	if e.cfg.Progress != nil {
		e.cfg.Progress.CopyDone(name, copyErr)
	}
	return c.finish(ctx, copyErr)
}

// errCopyDropped ends a copy whose table left the lake and the link
// meanwhile: there is nothing to copy.
var errCopyDropped = errors.New("the table was dropped during its copy")

// tableCopy is one table's initial copy (copyTable). Its batches go into a
// lake stage: written at once, committed with the cursor of the last one
// when the stage is Full, every copyCommitEvery, at a new schema and at the
// end; a new table whose copy is one batch is committed with its Define
// instead, without a stage, in one commit. A replacement (reinit != "") is committed at the end only, under
// def, the description it began with. Only the goroutine of the copy
// (copyTable and the source's emit) uses it.
type tableCopy struct {
	e    *Engine
	name string
	t    *table
	// stage holds the batches not committed yet (nil when none), staged
	// the cursor after them, stagedSince when the stage began.
	stage       *lake.Stage
	staged      string
	stagedSince time.Time
	// reinit says why the attempt running copies the table afresh beside
	// its data, "" when it does not; def is then the description it began
	// with.
	reinit string
	def    *lake.Definition
	// lakeErr is the lake's failure that ended the copy, if one did.
	lakeErr error
}

// run copies the table until it is done, it fails for good (copyErr, the
// source's error of the last attempt; the lake's is c.lakeErr), or ctx
// ends. Copies that fail otherwise than by an expired cursor are retried
// copyAttempts times, with growing waits. err is a failed commit of a
// reset (return it), or errCopyDropped.
func (c *tableCopy) run(ctx context.Context) (copyErr, err error) {
	e, name := c.e, c.name
	// expired is set when the committed resume cursor expired: the copy
	// starts afresh.
	expired := ""
	for attempt := 1; ; attempt++ {
		var resume string
		resume, copyErr, err = c.prepare(ctx, expired)
		if err != nil {
			return nil, err
		}
		if copyErr == nil && (c.def != nil || c.reinit == "") {
			copyErr = e.src.Copy(ctx, name, resume, c.emit)
		}
		if c.reinit != "" && c.stage != nil {
			// A replacement is whole or nothing: the next attempt (or
			// restart) copies the table afresh again.
			c.stage.Abort()
			c.stage = nil
		}
		// Rows staged before a failure or a stop are kept: their
		// cursor resumes the copy after them. A copy cancelled because
		// its table left the link (or the sync stops) may fail to: the
		// rows are then copied again from the last committed cursor.
		if c.lakeErr == nil && c.flush() != nil && ctx.Err() != nil {
			c.lakeErr = nil
		}
		if copyErr == nil || c.lakeErr != nil || ctx.Err() != nil {
			return copyErr, nil
		}
		if errors.Is(copyErr, source.ErrCursorExpired) {
			e.log.Warn("copy cannot resume: copying afresh", "table", name, "err", copyErr)
			expired = copyErr.Error()
			e.update(name, func(t *table) { t.copied = 0 })
			continue
		}
		var nt *source.NotTrackedError
		if errors.As(copyErr, &nt) || attempt >= copyAttempts {
			return copyErr, nil
		}
		wait := time.Duration(attempt*attempt) * time.Second
		e.log.Warn("copy failed: retrying", "table", name, "attempt", attempt, "in", wait, "err", copyErr)
		e.update(name, func(t *table) { t.err = copyErr.Error() })
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// prepare sets up the next attempt from the table's committed state: the
// cursor to resume from, a replacement copy (c.reinit, c.def) when the
// table has data to keep, or a reset when it has none and cannot resume.
// copyErr is a failed description; err a failed reset, or errCopyDropped.
func (c *tableCopy) prepare(ctx context.Context, expired string) (resume string, copyErr, err error) {
	e, name := c.e, c.name
	ts := e.lk.State().Tables[name]
	e.mu.Lock()
	pending := c.t.define != nil
	e.mu.Unlock()
	if ts == nil && !pending {
		return "", nil, errCopyDropped
	}
	if ts != nil && ts.Phase == lake.InProgress && ts.Reinit == "" && expired == "" {
		resume = ts.Cursor
	}
	c.reinit, c.def = "", nil
	switch {
	case resume != "" || ts == nil:
	case hasData(ts):
		// A fresh copy must not land on top of earlier data (rows
		// deleted at the source since would survive it): it replaces
		// the data.
		c.reinit = reinitReason(ts, expired)
		desc, derr := e.src.Describe(ctx, name)
		if derr != nil {
			return "", derr, nil
		}
		c.def = &lake.Definition{Source: desc, Options: c.t.spec.Options}
		e.update(name, func(t *table) {
			t.setState(Reinitialising)
			t.reinit, t.copied = c.reinit, 0
		})
	case ts.Phase != lake.InProgress || expired != "":
		// Nothing to keep: the table starts its copy afresh.
		if err := e.commit(lake.TableTx{Name: name, Reset: reinitReason(ts, expired)}); err != nil {
			return "", nil, err
		}
	}
	return resume, nil, nil
}

// finish ends the copy: the table streams, or it stops for its own error
// (Failed or Paused). It returns the lake's failures only.
func (c *tableCopy) finish(ctx context.Context, copyErr error) error {
	e, name := c.e, c.name
	switch {
	case c.lakeErr != nil && tableError(c.lakeErr) != "":
		e.stop(name, c.lakeErr)
		return nil
	case c.lakeErr != nil:
		return c.lakeErr
	case ctx.Err() != nil:
		return nil
	case copyErr != nil:
		e.fail(name, copyErr)
		return nil
	}
	e.log.Info("initial sync completed", "table", name)
	e.update(name, func(t *table) {
		t.setState(Completed)
		t.err, t.reinit = "", ""
		t.stream()
		t.cancelCopy = nil
	})
	signal(e.streamCh)
	return nil
}

// fail notes the lake's err, which ends the copy, and returns it.
func (c *tableCopy) fail(err error) error {
	c.lakeErr = err
	return err
}

// commitStage commits the staged rows and their cursor with tx.
func (c *tableCopy) commitStage(tx lake.TableTx) error {
	tx.Name, tx.Stage, tx.Cursor = c.name, c.stage, c.staged
	c.stage = nil
	if err := c.e.commit(tx); err != nil {
		tx.Stage.Abort()
		return c.fail(err)
	}
	return nil
}

// flush commits what is staged, unless the copy is a replacement (whole or
// nothing: it commits at its end only).
func (c *tableCopy) flush() error {
	if c.stage == nil || c.reinit != "" {
		return nil
	}
	return c.commitStage(lake.TableTx{})
}

// emit is the Copy's emit: it stages b, committing as the type's comment
// says.
func (c *tableCopy) emit(_ context.Context, b source.Batch) error {
	if c.reinit != "" {
		return c.emitReplace(b)
	}
	e, name := c.e, c.name
	e.mu.Lock()
	define := c.t.define
	c.t.define = nil
	e.mu.Unlock()
	if d := b.Schemas[name]; d != nil {
		define = &lake.Definition{Source: d, Options: c.t.spec.Options}
	}
	if define != nil && c.stage == nil && b.Done {
		// A table copied in one batch (most tables of a link of many)
		// is defined, written and completed in one commit instead of a
		// Define alone and then the stage (#16: half the commits of an
		// initial sync of small tables). The lake applies Define, then
		// the rows, to the table still InProgress, as a stage's are.
		tx := lake.TableTx{Name: name, Define: define, Changes: b.Changes, Cursor: b.Cursors[name], Phase: lake.Completed, CaughtUp: true}
		if ts := e.lk.State().Tables[name]; ts != nil && ts.Phase == lake.InProgress {
			tx.Reason = ts.Reason
		}
		if err := e.commit(tx); err != nil {
			return c.fail(err)
		}
		c.copied(len(b.Changes))
		return nil
	}
	if define != nil {
		// Staged rows have the old layout: they are committed first.
		if err := c.flush(); err != nil {
			return err
		}
		if err := e.commit(lake.TableTx{Name: name, Define: define}); err != nil {
			return c.fail(err)
		}
	}
	if c.stage == nil {
		st, err := e.lk.Stage(name)
		if err != nil {
			return c.fail(err)
		}
		c.stage, c.stagedSince = st, time.Now()
	}
	if err := c.stage.Add(e.commitCtx, b.Changes); err != nil {
		c.stage.Abort()
		c.stage = nil
		return c.fail(err)
	}
	c.staged = b.Cursors[name]
	c.copied(len(b.Changes))
	if b.Done {
		tx := lake.TableTx{Phase: lake.Completed, CaughtUp: true}
		// Keep saying why the table was copied afresh, if it was.
		if ts := e.lk.State().Tables[name]; ts != nil && ts.Phase == lake.InProgress {
			tx.Reason = ts.Reason
		}
		return c.commitStage(tx)
	}
	if c.stage.Full() || time.Since(c.stagedSince) >= copyCommitEvery {
		return c.flush()
	}
	return nil
}

// copied counts n more rows copied, in the status and the progress.
func (c *tableCopy) copied(n int) {
	c.e.update(c.name, func(t *table) { t.copied += int64(n) })
	if c.e.cfg.Progress != nil {
		c.e.cfg.Progress.Copied(c.name, n)
	}
}

// emitReplace is the emit of a fresh copy built beside the table's data:
// every batch goes into one replacement stage, begun under c.def at the
// first batch; a new schema evolves the stage's layout; the last batch
// swaps the copy in, with the cursor the stream starts from, in one commit
// that also ends the table's Reinit.
func (c *tableCopy) emitReplace(b source.Batch) error {
	e, name := c.e, c.name
	fail := func(err error) error {
		if c.stage != nil {
			c.stage.Abort()
			c.stage = nil
		}
		return c.fail(err)
	}
	if c.stage == nil {
		if d := b.Schemas[name]; d != nil {
			c.def.Source = d
		}
		st, err := e.lk.StageReplace(name, *c.def)
		if err != nil {
			return fail(err)
		}
		c.stage = st
	} else if d := b.Schemas[name]; d != nil {
		if err := c.stage.Define(lake.Definition{Source: d, Options: c.def.Options}); err != nil {
			return fail(err)
		}
	}
	if err := c.stage.Add(e.commitCtx, b.Changes); err != nil {
		return fail(err)
	}
	c.staged = b.Cursors[name]
	c.copied(len(b.Changes))
	if !b.Done {
		return nil
	}
	st := c.stage
	c.stage = nil
	err := e.commit(lake.TableTx{Name: name, Reset: c.reinit, Define: c.def, Stage: st, Cursor: c.staged,
		Phase: lake.Completed, Reason: c.reinit, CaughtUp: true})
	if err != nil {
		st.Abort()
		return c.fail(err)
	}
	return nil
}

// hasData reports whether a table's committed state names data that a
// fresh copy must replace rather than empty first.
func hasData(ts *lake.TableState) bool {
	return ts != nil && (len(ts.Files) > 0 || len(ts.Changes) > 0)
}

// reinitReason says why a table is copied afresh: its Reinit, the cursor
// that expired, the failure retried, or a copy that starts over.
func reinitReason(ts *lake.TableState, expired string) string {
	switch {
	case ts.Reinit != "":
		return ts.Reinit
	case expired != "":
		return expired
	case ts.Phase == lake.Failed:
		return "retrying after: " + ts.Reason
	}
	return "initial sync restarted from the beginning"
}

// streamRestartDelay gathers tables that leave the stream close together
// into one restart of it.
const streamRestartDelay = 200 * time.Millisecond

// streamLoop keeps one Stream running over every table whose initial copy
// is done. A table that starts streaming joins the running stream when the
// source is a source.Joiner (a restart reads every streamed table again: a
// restart per copy that ends would cost O(tables²) reads, #16); a table
// that leaves it (failed, paused, copied afresh, unlinked) restarts it.
func (e *Engine) streamLoop(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.reconciled:
	}
	backoff := time.Duration(0)
	for {
		// A signal sent before the cursors are read is answered by this
		// very start: left pending, it would restart the stream at once,
		// and a restart makes the server decode a large transaction in
		// flight again from its beginning.
		select {
		case <-e.streamCh:
		default:
		}
		cursors, following := e.streamCursors(nil)
		if len(cursors) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-e.streamCh:
				continue
			}
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		joiner, canJoin := e.src.(source.Joiner)
		var join chan map[string]string
		if canJoin {
			join = make(chan map[string]string)
		}
		e.streamStarts.Add(1)
		e.log.Debug("change stream started", "tables", len(cursors))
		go func() {
			if canJoin {
				done <- joiner.StreamJoin(sctx, cursors, join, e.onStream)
				return
			}
			done <- e.src.Stream(sctx, cursors, e.onStream)
		}()
		err := e.followStream(ctx, following, join, done)
		stop()
		if err == nil || err == errRestart {
			// The stream has not returned yet: it ends now.
			if derr := <-done; err == nil {
				err = derr
			}
		}
		e.abortTxStages()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == errRestart || errors.Is(err, source.ErrRestart):
			backoff = 0
			continue
		}
		if err := e.streamFailed(err); err != nil {
			return err
		}
		// A stream that committed a batch had recovered: its failure
		// starts the back-off afresh (a PostgreSQL restart is retried
		// after a second, not after the last outage's 30 s).
		if e.streamed.Swap(false) {
			backoff = 0
		}
		backoff = min(max(2*backoff, time.Second), 30*time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// errRestart is followStream's: a table left the stream.
var errRestart = errors.New("a table left the change stream")

// followStream watches the running stream until it must restart
// (errRestart), ctx ends (nil) or the stream ends (its error, received
// from done: only then has done delivered). Tables that start
// streaming meanwhile join it through join when it is not nil; following
// holds the epoch of each table it follows, and grows with the joins.
func (e *Engine) followStream(ctx context.Context, following map[string]int, join chan<- map[string]string, done <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			return err
		case <-e.streamCh:
		}
		if join == nil {
			time.Sleep(streamRestartDelay)
			return errRestart
		}
		added, joined := e.streamCursors(following)
		if added == nil {
			time.Sleep(streamRestartDelay)
			return errRestart
		}
		if len(added) == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			return err
		case join <- added:
			maps.Copy(following, joined)
			e.log.Debug("tables joined the change stream", "joined", len(added), "tables", len(following))
		}
	}
}

// streamFailed handles a Stream that ended with err: an expired cursor sends
// its table back to an initial copy; other errors show in the status of the
// streamed tables until the stream is restarted.
func (e *Engine) streamFailed(err error) error {
	if expired := expiredCursors(err); len(expired) > 0 {
		// Every table named is marked in one commit and queued at once,
		// so that their copies share one snapshot and the stream
		// restarts once for all of them (#15 case 11). A table with data
		// keeps it, readable, until its fresh copy replaces it (#15 case
		// 3); the mark also takes it off the stream's position.
		var resets []lake.TableTx
		shadowed := map[string]bool{}
		for _, ce := range expired {
			e.log.Warn("change cursor expired: re-initialising the table", "table", ce.Table, "reason", ce.Reason)
			if ts, ok := e.lk.State().Tables[ce.Table]; ok {
				tx := lake.TableTx{Name: ce.Table, Reset: ce.Error()}
				if hasData(ts) {
					tx = lake.TableTx{Name: ce.Table, Reinit: ce.Error()}
					shadowed[ce.Table] = true
				}
				resets = append(resets, tx)
			}
		}
		if cerr := e.commit(resets...); cerr != nil {
			return cerr
		}
		var queue []string
		e.mu.Lock()
		for _, ce := range expired {
			if t, ok := e.tables[ce.Table]; ok {
				t.streaming, t.copied = false, 0
				t.setState(InProgress)
				if shadowed[ce.Table] {
					t.setState(Reinitialising)
					t.reinit = ce.Error()
				}
				queue = append(queue, ce.Table)
			}
		}
		e.mu.Unlock()
		for _, name := range queue {
			e.copyq <- name
		}
		return nil
	}
	var lerr *lake.ConflictError
	if errors.As(err, &lerr) {
		return err
	}
	var cerr *commitError
	if errors.As(err, &cerr) {
		// The status shows LakeUnwritable (commitFault) until a commit
		// passes.
		e.log.Error("the lake refuses the change stream's commit: restarting the stream", "err", err)
		return nil
	}
	e.log.Error("change stream failed: restarting it", "err", err)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tables {
		if t.streaming {
			t.setWait(SourceUnreachable, err.Error())
		}
	}
	return nil
}

// commitError is a commit of the change stream that failed: the lake's
// error, not the source's, when it ends the stream.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// expiredCursors returns the *source.CursorExpiredError of every table an
// error of Stream names (a source joins one per table with errors.Join).
func expiredCursors(err error) []*source.CursorExpiredError {
	switch u := err.(type) {
	case *source.CursorExpiredError:
		return []*source.CursorExpiredError{u}
	case interface{ Unwrap() []error }:
		var out []*source.CursorExpiredError
		for _, e := range u.Unwrap() {
			out = append(out, expiredCursors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return expiredCursors(u.Unwrap())
	}
	return nil
}

// streamCursors returns the committed cursors of the tables to stream that
// following (a running stream's tables, by epoch) lacks, and their epochs.
// It returns nils when a table following names no longer streams, or
// streams since another epoch: the stream must restart.
func (e *Engine) streamCursors(following map[string]int) (map[string]string, map[string]int) {
	state := e.lk.State()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, epoch := range following {
		if t, ok := e.tables[name]; !ok || !t.streaming || t.epoch != epoch {
			return nil, nil
		}
	}
	out, epochs := map[string]string{}, map[string]int{}
	for name, t := range e.tables {
		if _, ok := following[name]; ok {
			continue
		}
		if ts, ok := state.Tables[name]; ok && t.streaming && ts.Phase == lake.Completed {
			out[name] = state.Cursor(ts)
			epochs[name] = t.epoch
		}
	}
	return out, epochs
}

// abortTxStages drops the parts of a transaction a Stream that ended
// staged: the next Stream delivers the whole transaction again, from the
// committed cursors.
func (e *Engine) abortTxStages() {
	for name, st := range e.txStages {
		st.Abort()
		delete(e.txStages, name)
	}
}

// liveSpec returns the spec of a table the stream delivers. A batch names
// few tables of many: looking each up, rather than copying every streamed
// table's spec per batch, keeps an idle poll's cost independent of the
// table count (#16).
func (e *Engine) liveSpec(name string) (Spec, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tables[name]; ok && t.streaming {
		return t.spec, true
	}
	return Spec{}, false
}

// stageTx writes the schemas and changes b has for the tables to stage
// (streamed ones for which stage says so) into their transaction stages,
// each begun at its table's first part. A table whose data or schema the
// lake refuses is stopped, its stage dropped; any other error is the
// lake's.
func (e *Engine) stageTx(b source.Batch, stage func(string) bool) error {
	byTable := map[string][]source.Change{}
	var names []string
	want := func(name string) bool {
		_, ok := e.liveSpec(name)
		return ok && stage(name)
	}
	for _, c := range b.Changes {
		if !want(c.Table) {
			continue
		}
		if _, ok := byTable[c.Table]; !ok {
			names = append(names, c.Table)
		}
		byTable[c.Table] = append(byTable[c.Table], c)
	}
	for name := range b.Schemas {
		if _, ok := byTable[name]; !ok && want(name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		st := e.txStages[name]
		var err error
		if st == nil {
			if st, err = e.lk.StageTx(name); err != nil {
				return err
			}
			e.txStages[name] = st
		}
		if d := b.Schemas[name]; d != nil {
			sp, _ := e.liveSpec(name)
			err = st.Define(lake.Definition{Source: d, Options: sp.Options})
		}
		if err == nil {
			err = st.Add(e.commitCtx, byTable[name])
		}
		if err != nil {
			st.Abort()
			delete(e.txStages, name)
			if tableError(err) != name {
				return err
			}
			e.stop(name, err)
		}
	}
	return nil
}

// describeChanged describes afresh, before their changes are committed,
// the tables of b with changes that stream from their committed
// description (see addTable): their changes may name columns the
// committed description lacks.
func (e *Engine) describeChanged(ctx context.Context, b source.Batch) error {
	var names []string
	e.mu.Lock()
	for _, c := range b.Changes {
		if t := e.tables[c.Table]; t != nil && t.undescribed != nil && !slices.Contains(names, c.Table) {
			names = append(names, c.Table)
		}
	}
	e.mu.Unlock()
	for _, name := range names {
		if err := e.redescribe(ctx, name); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return &commitError{err}
		}
	}
	return nil
}

// onStream commits one batch of the change stream.
//
// A batch with a Position puts every table of the stream at one cursor:
// it is committed once, as the lake's stream cursor, which every streamed
// table follows, in the same commit as the data. So an idle table's cursor
// never falls behind what the source releases (#15 case 2) and no commit
// writes a cursor per idle table. Without a Position (a source with a
// cursor per table, or a stream still catching up to a table that just
// joined it) tables' own cursors are committed: at once when they have
// changes, at most every CursorEvery when idle.
//
// A part of a source transaction (Batch.Partial) is staged; the batch that
// ends the transaction commits the staged parts of every table with the
// rest of its changes, in one commit (issue #15, case 10).
func (e *Engine) onStream(ctx context.Context, b source.Batch) error {
	if err := e.describeChanged(ctx, b); err != nil {
		return err
	}
	if b.Partial {
		return e.stageTx(b, func(string) bool { return true })
	}
	if len(e.txStages) > 0 {
		if err := e.stageTx(b, func(name string) bool { return e.txStages[name] != nil }); err != nil {
			return err
		}
	}
	now := time.Now()
	var tx lake.Tx
	idx := map[string]int{}
	add := func(name string) *lake.TableTx {
		if i, ok := idx[name]; ok {
			return &tx.Tables[i]
		}
		idx[name] = len(tx.Tables)
		tx.Tables = append(tx.Tables, lake.TableTx{Name: name, CaughtUp: true})
		return &tx.Tables[len(tx.Tables)-1]
	}
	changed := map[string]bool{}
	for _, c := range b.Changes {
		changed[c.Table] = true
	}
	staged := func(name string) bool { return e.txStages[name] != nil }
	for name, st := range e.txStages {
		if _, ok := e.liveSpec(name); !ok {
			st.Abort()
			delete(e.txStages, name)
			continue
		}
		changed[name] = true
		add(name).Stage = st
	}
	state := e.lk.State()
	e.mu.Lock()
	live := func(name string) bool { t, ok := e.tables[name]; return ok && t.streaming }
	for name, d := range b.Schemas {
		// A source may repeat a description it already sent; only a change
		// is worth a commit. A staged table's went into its stage.
		if ts := state.Tables[name]; live(name) && !staged(name) && (ts == nil || !sameSchema(ts.Source, d)) {
			add(name).Define = &lake.Definition{Source: d, Options: e.tables[name].spec.Options}
		}
	}
	for name, c := range b.Cursors {
		ts := state.Tables[name]
		if !live(name) {
			// A table taken out of the link while this stream runs must
			// not follow the stream's cursor past changes it no longer
			// gets (its own stop normally ended that already).
			if b.Position != "" && ts != nil && ts.FollowsStream {
				reason := "removed from the link"
				if t, ok := e.tables[name]; ok && t.err != "" {
					reason = t.err
				}
				ftx := add(name)
				ftx.CaughtUp, ftx.Phase, ftx.Reason = false, lake.Failed, reason
			}
			continue
		}
		t := e.tables[name]
		t.err = ""
		if t.wait == SourceUnreachable {
			// The stream delivers the table again.
			t.setWait("", "")
		}
		_, evolving := idx[name]
		idle := !evolving && !changed[name]
		if idle {
			// Only a batch without changes says the table is current: a
			// batch with changes may have more behind it.
			t.caughtUp = now
		}
		if b.Position != "" {
			if ts == nil || !ts.FollowsStream {
				add(name).Follow = true
			}
			continue
		}
		// An idle table's newer cursor waits for the next round of idle
		// cursors (below), not a commit per poll: the old one stays valid
		// meanwhile.
		if idle {
			t.idleCursor = c
			if ts != nil && c == state.Cursor(ts) {
				t.idleCursor = ""
			}
			continue
		}
		t.idleCursor = ""
		add(name).Cursor = c
	}
	if now.Sub(e.cursorsCommitted) >= e.cfg.CursorEvery {
		// Every idle table's newer cursor, in this one commit; the lake
		// records each as a cursor alone (a few hundred bytes), so this
		// costs one commit per CursorEvery whatever the table count.
		e.cursorsCommitted = now
		for name, t := range e.tables {
			if _, ok := idx[name]; !ok && t.streaming && t.idleCursor != "" {
				add(name).Cursor = t.idleCursor
			}
		}
	}
	for _, c := range b.Changes {
		if live(c.Table) && !staged(c.Table) {
			ttx := add(c.Table)
			ttx.Changes = append(ttx.Changes, c)
		}
	}
	e.mu.Unlock()
	if b.Position != "" {
		if b.Position != state.StreamCursor {
			tx.StreamCursor = b.Position
		}
		if len(b.Changes) == 0 && (tx.StreamCursor != "" || now.Sub(state.StreamSynced) >= e.cfg.CursorEvery) {
			tx.StreamCaughtUp = true
		}
	}
	if len(tx.Tables) == 0 && tx.StreamCursor == "" && !tx.StreamCaughtUp {
		e.streamed.Store(true)
		return nil
	}
	for {
		err := e.commitTx(tx)
		if err == nil {
			break
		}
		// Data or a schema the lake refuses stops its table, not the
		// link: the batch is committed again without it (#15 case 6).
		name := tableError(err)
		i, ok := idx[name]
		if name == "" || !ok {
			return &commitError{err}
		}
		e.stop(name, err)
		if st := e.txStages[name]; st != nil {
			st.Abort()
			delete(e.txStages, name)
		}
		tx.Tables = append(tx.Tables[:i], tx.Tables[i+1:]...)
		delete(idx, name)
		for n, j := range idx {
			if j > i {
				idx[n] = j - 1
			}
		}
	}
	e.streamed.Store(true)
	clear(e.txStages)
	e.mu.Lock()
	for _, ttx := range tx.Tables {
		if t, ok := e.tables[ttx.Name]; ok && ttx.Cursor != "" && ttx.Cursor == t.idleCursor {
			t.idleCursor = ""
		}
	}
	e.mu.Unlock()
	return nil
}

func (e *Engine) maintainLoop(ctx context.Context) error {
	wait := e.cfg.MaintainEvery
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		err := e.lk.Maintain(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.mu.Lock()
		if err != nil {
			e.maintainFault.set(err, time.Now())
		} else {
			e.maintainFault.clear()
		}
		e.mu.Unlock()
		wait = maintainBackoff(wait, e.cfg.MaintainEvery, err != nil)
		if err != nil {
			// A full disk or a read-only lake fails every round: retrying
			// each second would rewrite a table each time (#15 case 18).
			e.log.Error("lake maintenance failed: retrying", "in", wait, "err", err)
		}
	}
}

// maintainBackoff is the wait before the next maintenance round: doubled
// after a failure up to 30 s, as the stream's, and back to every after a
// success.
func maintainBackoff(wait, every time.Duration, failed bool) time.Duration {
	if !failed {
		return every
	}
	return min(max(2*wait, every), 30*time.Second)
}

// statusEvery is how often a running sync publishes its status.
const statusEvery = time.Second

func (e *Engine) statusLoop(ctx context.Context) error {
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := e.writeStatus(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Warn("publishing the status", "err", err)
			}
		}
	}
}

// writeStatus publishes the heartbeat and, when a table's live state
// changed since the last time, the table list (see statusObject). When the
// lake refuses them, the status says so (LakeUnwritable: an idle link
// commits nothing, so this may be the first sign of a read-only lake) and
// both go to the fallback file on this machine instead, which lakelink
// status also reads; the fallback is removed once the lake takes the
// status again. It returns an error only when neither took it.
func (e *Engine) writeStatus(ctx context.Context, stopped bool) error {
	tables, hb := e.liveStatus(stopped)
	b, err := json.Marshal(tables)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, e.statusWritten) {
		if err = store.Put(ctx, e.st, statusObject, b); err == nil {
			e.statusWritten = b
		}
	}
	if err == nil {
		err = putJSON(ctx, e.st, heartbeatObject, hb)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.mu.Lock()
	started := err != nil && e.statusFault.err == ""
	if err == nil {
		e.statusFault.clear()
	} else {
		e.statusFault.set(fmt.Errorf("writing the live status %s: %w", e.st.Location(statusObject), err), time.Now())
	}
	fellBack := e.fellBack
	e.fellBack = err != nil
	e.mu.Unlock()
	path, perr := fallbackStatusPath(e.st)
	if err == nil {
		if fellBack && perr == nil {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				return rerr
			}
		}
		return nil
	}
	// The lake's table list may be stale now: rewritten once it takes
	// writes again.
	e.statusWritten = nil
	if started {
		e.log.Error("the lake refuses the live status: publishing it on this machine until it takes it again", "err", err, "fallback", path)
	}
	if perr != nil {
		return errors.Join(err, perr)
	}
	// Taken again: it now shows the refusal.
	tables, hb = e.liveStatus(stopped)
	fb, merr := json.Marshal(fallbackStatus{Heartbeat: hb, Tables: tables})
	if merr != nil {
		return merr
	}
	if ferr := writeFileAtomic(path, fb); ferr != nil {
		return errors.Join(err, ferr)
	}
	return nil
}

// liveStatus is the live status to publish now.
func (e *Engine) liveStatus(stopped bool) (liveTables, heartbeat) {
	tables := e.Status()
	var current time.Time
	for i := range tables {
		t := &tables[i]
		if t.State == Completed && !t.LastSynchronized.IsZero() && (current.IsZero() || t.LastSynchronized.Before(current)) {
			current = t.LastSynchronized
		}
		t.Rows, t.LastSynchronized, t.Lag = 0, time.Time{}, 0
	}
	lt := liveTables{PID: os.Getpid(), Tables: tables}
	e.mu.Lock()
	if f := e.maintainFault; f.err != "" {
		lt.Maintenance = &Problem{Error: f.err, Since: f.since, Action: maintainAction}
	}
	e.mu.Unlock()
	return lt, heartbeat{Updated: time.Now(), PID: os.Getpid(), Stopped: stopped, Current: current}
}

// putJSON writes v as the object name.
func putJSON(ctx context.Context, st store.Store, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return store.Put(ctx, st, name, b)
}

// maintainAction is what to do about failing lake maintenance.
const maintainAction = "free space on the lake's disk or make the lake folder writable; maintenance retries with back-off (at most 30 s apart) and the tables stay current meanwhile"

// writeFileAtomic replaces the file path with data: a reader sees the old
// content or the new, never a mix.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".status-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// untilDone cancels the run once every table is either failed, paused or streaming
// and caught up (for --once).
func (e *Engine) untilDone(ctx context.Context, cancel context.CancelFunc) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if e.done() {
			cancel()
			return nil
		}
	}
}

func (e *Engine) done() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.tables) < len(e.specs) {
		return false
	}
	for _, t := range e.tables {
		if t.state == Failed || t.state == Paused {
			continue
		}
		if !t.streaming || t.caughtUp.IsZero() {
			return false
		}
	}
	return true
}
