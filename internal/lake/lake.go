// Package lake writes a CSV data lake in the layout Azure Synapse Link for
// Dataverse writes, through a commit protocol that makes every batch of
// changes visible exactly once, atomically, without ever renaming or
// appending to an object, and without ever removing a file a reader of an
// older state may still read. docs/commit-protocol.md states the protocol and
// its invariants; docs/lake-format.md the layout.
package lake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// Options configure a Lake.
type Options struct {
	// Link is the link name; a lake belongs to one link.
	Link string
	// Now returns the time; nil means time.Now. Tests pin it.
	Now    func() time.Time
	Logger *slog.Logger
	// Grace is the delay before objects no commit names any more are
	// deleted; 0 means 60 s, a negative value means at once (tests).
	Grace time.Duration
	// MaxFileRows bounds the rows of one partition file; default 500 000.
	// Files are also bounded to about 128 MB whatever their row count.
	MaxFileRows int
	// SnapshotInterval is the least time between two snapshots of a
	// table; default 1 h.
	SnapshotInterval time.Duration
	// SnapshotsToKeep is how many snapshots per table are kept, 0..100;
	// default 5 (a negative value means 0).
	SnapshotsToKeep int
	// Incremental is the incremental-update folder mode.
	Incremental Incremental
	// CompactRows is the count of pending change rows of an in-place table
	// that makes Maintain compact it; default 50 000.
	CompactRows int
	// CompactAge is the age of the oldest pending change that makes
	// Maintain compact a table; default 1 min.
	CompactAge time.Duration
	// Format is the table format; nil means the Synapse CSV format with
	// the options above. A Format serves one Lake.
	Format Format
}

// Incremental configures incremental-update folders (forces append-only).
type Incremental struct {
	Enabled bool
	// Interval is the time span of one folder; default 15 min.
	Interval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.Grace == 0:
		o.Grace = time.Minute
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.MaxFileRows <= 0 {
		o.MaxFileRows = 500_000
	}
	if o.SnapshotInterval <= 0 {
		o.SnapshotInterval = time.Hour
	}
	switch {
	case o.SnapshotsToKeep == 0:
		o.SnapshotsToKeep = 5
	case o.SnapshotsToKeep < 0:
		o.SnapshotsToKeep = 0
	case o.SnapshotsToKeep > 100:
		o.SnapshotsToKeep = 100
	}
	if o.CompactRows <= 0 {
		o.CompactRows = 50_000
	}
	if o.CompactAge <= 0 {
		o.CompactAge = time.Minute
	}
	if o.Incremental.Enabled && o.Incremental.Interval <= 0 {
		o.Incremental.Interval = 15 * time.Minute
	}
	return o
}

// Tx is one atomic commit: every table of it changes, or none does.
type Tx struct {
	Tables []TableTx
	// StreamCursor, if non-empty, is the stream's new position: the
	// cursor of every table that follows it (State.StreamCursor).
	StreamCursor string
	// StreamCaughtUp says every table that follows the stream is current
	// as of this commit: it sets State.StreamSynced.
	StreamCaughtUp bool
}

// TableTx is what one commit does to one table.
type TableTx struct {
	Name string
	// Define is set in a table's first commit and whenever the source
	// schema or the options change: new columns are appended, dropped ones
	// kept and marked. Changing the options or a column's type needs Reset.
	Define *Definition
	// Reset, when non-empty, re-initialises the table: a new Generation,
	// all its data dropped, Phase InProgress. It is the reason shown.
	// With a StageReplace stage, the stage's copy replaces the data in
	// the same commit, so readers never see the table empty.
	Reset string
	// Reinit, when non-empty, records that the table is being copied
	// afresh beside its committed data (StageReplace), for that reason
	// (TableState.Reinit): its data stays as it is, readable, and it
	// stops following the stream. The Reset that swaps the copy in ends
	// it. It needs a table the lake has, and no Reset.
	Reinit string
	// Drop removes the table from the lake; its files become garbage.
	Drop bool
	// Changes apply in order; a truncate among them (source.Change.
	// Truncate) empties the table at its place (truncate.go).
	Changes []source.Change
	// Stage holds rows already written (see Stage); its files join the
	// table after Changes. A commit that fails leaves it to the caller, to
	// commit again or Abort.
	Stage *Stage
	// Cursor is the table's new source position, if non-empty; the table
	// no longer follows the stream.
	Cursor string
	// Follow makes a Completed table's cursor the stream's from this
	// commit on (State.StreamCursor); the commit must carry a stream
	// position at or past the table's own cursor.
	Follow bool
	// Phase is the table's new phase, if non-empty. Completed sets
	// InitialSyncCompleted and makes Maintain take the first snapshot.
	Phase Phase
	// Reason goes with Phase Failed.
	Reason string
	// CaughtUp says the table is current with the source as of this
	// commit: it sets LastSynchronized.
	CaughtUp bool
}

// Definition is a table's source schema and link options.
type Definition struct {
	Source  *schema.Table
	Options TableOptions
}

// Lake writes one lake. Commit and Maintain may be called concurrently.
type Lake struct {
	st   store.Store
	opts Options
	log  *slog.Logger

	// mu serializes commits; state only changes under it.
	mu    sync.Mutex
	state atomic.Pointer[State]
	// queue holds the commits waiting for mu, guarded by qmu (see Commit).
	qmu   sync.Mutex
	queue []*queued
	// session and counter make data object names unique across writers
	// and restarts (see objectName).
	session string
	counter atomic.Int64
	// maintainMu keeps Maintain calls from overlapping.
	maintainMu sync.Mutex
	// f is the table format (Options.Format), o what the lake lends it.
	f Format
	o *Objects
	// dirty names the tables committed since the last Derive; dirtyAll
	// is set when every table must be looked at (a failed Derive, a state
	// re-read), derived once the first Derive succeeded. Guarded by mu.
	dirty             map[string]bool
	dirtyAll, derived bool
	// reload is set when a commit record write ended uncertain; guarded
	// by mu.
	reload bool
	// lastCheckpoint is the seq of the newest checkpoint, checkpointBytes
	// its size and logBytes the size of the records after it, guarded by
	// mu (see checkpointDue).
	lastCheckpoint, checkpointBytes, logBytes int64
	closed                                    atomic.Bool
}

// newSession returns a random token for object names; tests replace it to
// make names deterministic.
var newSession = func() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Open loads the latest committed state of the lake in st and removes
// orphans: objects a crashed writer wrote that no committed state names,
// once they are older than the grace period.
func Open(ctx context.Context, st store.Store, opts Options) (*Lake, error) {
	opts = opts.withDefaults()
	s, err := ReadState(ctx, st)
	if err != nil {
		return nil, err
	}
	if s.Seq > 0 && s.Link != "" && opts.Link != "" && s.Link != opts.Link {
		return nil, fmt.Errorf("the lake belongs to link %q, not %q: use the link's own lake folder, or unlink %q first", s.Link, opts.Link, s.Link)
	}
	if opts.Link == "" {
		opts.Link = s.Link
	}
	l := &Lake{st: st, opts: opts, log: opts.Logger, session: newSession(), f: opts.Format}
	if l.f == nil {
		l.f = newCSVFormat(opts)
	}
	l.o = &Objects{l: l}
	l.state.Store(s)
	cps, err := st.List(ctx, checkpointDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", checkpointDir, err)
	}
	for _, o := range cps {
		if seq, ok := parseSeq(checkpointDir, o.Name); ok && seq <= s.Seq && seq >= l.lastCheckpoint {
			l.lastCheckpoint, l.checkpointBytes = seq, o.Size
		}
	}
	logs, err := st.List(ctx, logDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", logDir, err)
	}
	for _, o := range logs {
		if seq, ok := parseSeq(logDir, o.Name); ok && seq > l.lastCheckpoint {
			l.logBytes += o.Size
		}
	}
	if err := l.removeOrphans(ctx, s); err != nil {
		return nil, err
	}
	return l, nil
}

// State returns the latest committed state; callers must not modify it.
func (l *Lake) State() *State { return l.state.Load() }

// Close writes the derived files of the last commits and releases the
// lake. Commits and Maintain after Close fail.
func (l *Lake) Close() error {
	l.maintainMu.Lock()
	defer l.maintainMu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	return l.flushDerived(context.Background())
}

var errClosed = errors.New("the lake is closed")

// tableNameRE is what a table name may be: objects are named after their
// table, so it must be one path segment. A format may reserve more names
// (Format.Layout).
var tableNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkTableName(name string) error {
	if !tableNameRE.MatchString(name) {
		return fmt.Errorf("table name %q cannot name a lake folder: use letters, digits, '_', '.', '-', not a reserved folder name", name)
	}
	return nil
}

// commitWork collects what one commit wrote and what it stops naming.
type commitWork struct {
	written []string
	garbage []string
}

// queued is one caller's transaction waiting in Lake.queue; state and err
// are its outcome once done, w what it wrote (all guarded by Lake.mu).
type queued struct {
	ctx   context.Context
	tx    Tx
	done  bool
	state *State
	err   error
	w     *commitWork
}

func (p *queued) finish(s *State, err error) { p.done, p.state, p.err = true, s, err }

// maxGroup bounds the transactions one commit record takes.
const maxGroup = 64

// Commit applies tx atomically and returns the new state, which may hold
// other callers' transactions too. Commits are serialized, and grouped:
// the transactions that queued while a record was being written are
// written together in the next one (issue #16: eight copy workers spent
// 85 % of their time waiting for each other's record). Each transaction
// stays all or nothing: one that fails (a bad table, a cancelled ctx)
// fails alone, and the others of its group commit without it. Two
// transactions naming the same table are never grouped, so each table's
// commits keep their order. A group fails as one only when its record
// cannot be written. Grouping is no reason to split work: several tables'
// batches in one Tx still cost one record.
func (l *Lake) Commit(ctx context.Context, tx Tx) (*State, error) {
	if l.closed.Load() {
		return nil, errClosed
	}
	// A stage's last files are closed and synced before the lock: that
	// waits for the disk, and commits of other tables must not wait with
	// it. finish keeps its outcome, which applyStage then takes.
	for i := range tx.Tables {
		if st := tx.Tables[i].Stage; st != nil && st.l == l && !st.spent {
			st.finish()
		}
	}
	p := &queued{ctx: ctx, tx: tx}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	l.qmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !p.done {
		l.commitGroup(l.nextGroup())
	}
	return p.state, p.err
}

// nextGroup takes from the queue the longest run of transactions, from its
// head, of which no two name the same table. Called with mu held, so the
// queue is not empty: the caller's own transaction is in it.
func (l *Lake) nextGroup() []*queued {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	seen := map[string]bool{}
	n := 0
	for _, p := range l.queue {
		if n == maxGroup || (n > 0 && slices.ContainsFunc(p.tx.Tables, func(t TableTx) bool { return seen[t.Name] })) {
			break
		}
		for _, t := range p.tx.Tables {
			seen[t.Name] = true
		}
		n++
	}
	group := slices.Clone(l.queue[:n])
	l.queue = slices.Delete(l.queue, 0, n)
	return group
}

// commitGroup writes the transactions of group in one record and finishes
// each. Called with mu held.
func (l *Lake) commitGroup(group []*queued) {
	// Not the first caller's context: its cancellation must not fail the
	// others' commits.
	if err := l.reloadIfUncertain(context.WithoutCancel(group[0].ctx)); err != nil {
		for _, p := range group {
			p.finish(nil, err)
		}
		return
	}
	base := l.state.Load()
	now := l.opts.Now().UTC()
	rec := &record{Seq: base.Seq + 1, Committed: now, Link: l.opts.Link, Tables: map[string]*TableState{},
		StreamCursor: base.StreamCursor, StreamSynced: base.StreamSynced}
	var live []*queued
	var garbage []string
	for _, p := range group {
		tx := &p.tx
		if len(tx.Tables) == 0 && (tx.StreamCursor == "" || tx.StreamCursor == base.StreamCursor) && !tx.StreamCaughtUp {
			p.finish(base, nil)
			continue
		}
		if err := p.ctx.Err(); err != nil {
			p.finish(nil, err)
			continue
		}
		tables, cursors, w, err := l.applyTx(p.ctx, base, tx, now)
		if err != nil {
			l.deleteQuietly(p.ctx, w.written)
			p.finish(nil, err)
			continue
		}
		maps.Copy(rec.Tables, tables)
		if len(cursors) > 0 {
			if rec.Cursors == nil {
				rec.Cursors = map[string]string{}
			}
			maps.Copy(rec.Cursors, cursors)
		}
		if tx.StreamCursor != "" {
			rec.StreamCursor = tx.StreamCursor
		}
		if tx.StreamCaughtUp {
			rec.StreamSynced = now
		}
		garbage = append(garbage, w.garbage...)
		p.w = w
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	rec.Garbage = appendGarbage(base.Garbage, garbage, now)
	ctx := live[0].ctx
	size, err := writeRecord(ctx, l.st, base, rec)
	if err == nil || errors.Is(err, errUncertain) {
		// The record may name the stages' files: they are the lake's now.
		for _, p := range live {
			for i := range p.tx.Tables {
				if st := p.tx.Tables[i].Stage; st != nil {
					st.spent = true
				}
			}
		}
	}
	if err != nil {
		if errors.Is(err, errUncertain) {
			// Learn at once whether the record landed, so that State
			// tells the caller which cursor to resume from; if the
			// store cannot tell now, the next commit asks again.
			l.reload = true
			if rerr := l.reloadIfUncertain(context.WithoutCancel(ctx)); rerr != nil {
				l.log.Warn("lake: could not re-read the state after an uncertain commit", "seq", rec.Seq, "err", rerr)
			}
		}
		for _, p := range live {
			if !errors.Is(err, errUncertain) {
				l.deleteQuietly(p.ctx, p.w.written)
			}
			p.finish(nil, err)
		}
		return
	}
	next := base.apply(rec)
	l.state.Store(next)
	l.afterCommit(ctx, next, rec, size)
	for _, p := range live {
		p.finish(next, nil)
	}
}

// applyTx applies the tables of tx to base: the new states of the tables it
// changes, the new cursors of those whose commit only moves the cursor,
// and what it wrote and stops naming. On error it returns what it wrote
// so far, for the caller to delete.
func (l *Lake) applyTx(ctx context.Context, base *State, tx *Tx, now time.Time) (map[string]*TableState, map[string]string, *commitWork, error) {
	tables, cursors := map[string]*TableState{}, map[string]string{}
	w := &commitWork{}
	for i := range tx.Tables {
		ttx := &tx.Tables[i]
		_, dup := tables[ttx.Name]
		if _, moved := cursors[ttx.Name]; dup || moved {
			return nil, nil, w, fmt.Errorf("commit: table %s appears twice in one Tx; merge its batches", ttx.Name)
		}
		bts := base.Tables[ttx.Name]
		ts, err := l.applyTable(ctx, bts, ttx, now, w)
		if err != nil {
			return nil, nil, w, err
		}
		if ts != nil && bts != nil && bts.FollowsStream && !ts.FollowsStream && ttx.Cursor == "" && ts.Generation == bts.Generation {
			// A table that leaves the stream (Reinit, Failed) keeps
			// the position it was current to as its own cursor.
			ts.Cursor = base.Cursor(bts)
		}
		if cursorOnly(bts, ts, now) {
			cursors[ttx.Name] = ts.Cursor
			continue
		}
		tables[ttx.Name] = ts
	}
	return tables, cursors, w, nil
}

// reloadIfUncertain re-reads the committed state after a commit record
// write of unknown outcome, so that the next commit builds on what the
// store holds. Called with mu held.
func (l *Lake) reloadIfUncertain(ctx context.Context) error {
	if !l.reload {
		return nil
	}
	s, err := ReadState(ctx, l.st)
	if err != nil {
		return fmt.Errorf("re-reading the lake state after an uncertain commit: %w", err)
	}
	l.state.Store(s)
	l.reload = false
	l.dirtyAll = true
	return nil
}

func appendGarbage(old []Garbage, paths []string, now time.Time) []Garbage {
	out := make([]Garbage, 0, len(old)+len(paths))
	out = append(out, old...)
	for _, p := range paths {
		out = append(out, Garbage{Path: p, Since: now})
	}
	return out
}

// afterCommit does the work a commit of a record of size bytes triggers but
// does not depend on: a checkpoint when due (its failure does not undo the
// commit; the next commit retries it), and marking the derived files for
// Maintain. Called with mu held.
func (l *Lake) afterCommit(ctx context.Context, s *State, rec *record, size int64) {
	l.logBytes += size
	if checkpointDue(s.Seq-l.lastCheckpoint, l.logBytes, l.checkpointBytes) {
		size, err := writeCheckpoint(ctx, l.st, s)
		if size > 0 {
			l.lastCheckpoint, l.checkpointBytes, l.logBytes = s.Seq, size, 0
		}
		if err != nil {
			l.log.Warn("lake: checkpoint failed; the next commit retries it", "seq", s.Seq, "err", err)
		}
	}
	if l.dirty == nil {
		l.dirty = map[string]bool{}
	}
	for name := range rec.Tables {
		l.dirty[name] = true
	}
}

// flushDerived has the format write the derived files of the tables
// committed since the last flush (Format.Derive). Called with maintainMu
// held, not mu: commits go on meanwhile.
func (l *Lake) flushDerived(ctx context.Context) error {
	l.mu.Lock()
	s := l.state.Load()
	dirty, all := l.dirty, l.dirtyAll || !l.derived
	l.dirty, l.dirtyAll = nil, false
	l.mu.Unlock()
	if err := l.f.Derive(ctx, s, dirty, all); err != nil {
		l.mu.Lock()
		l.dirtyAll = true
		l.mu.Unlock()
		return err
	}
	l.mu.Lock()
	l.derived = true
	l.mu.Unlock()
	return nil
}

func (l *Lake) deleteQuietly(ctx context.Context, names []string) {
	for _, n := range names {
		if err := l.st.Delete(context.WithoutCancel(ctx), n); err != nil {
			l.log.Warn("lake: could not delete an unnamed object; Open removes it later", "object", n, "err", err)
		}
	}
}

// TableOptions returns the options the lake applies to a table defined
// with d, as TableState.Options will hold them (Format.Options; the Synapse
// format: append-only when the source or the incremental folder mode
// forces it, Year partitions by default), or d's own when the format
// refuses them. Compare a profile's options with a table's state through
// it: comparing the raw options would see a change where there is none.
func (l *Lake) TableOptions(d Definition) TableOptions {
	o, err := l.f.Options(d)
	if err != nil {
		return d.Options
	}
	return o
}

// applyTable returns the new state of one table (nil when dropped), writing
// its new data objects. base is the committed state, nil for a new table;
// it is not modified.
func (l *Lake) applyTable(ctx context.Context, base *TableState, ttx *TableTx, now time.Time, w *commitWork) (*TableState, error) {
	if err := checkTableName(ttx.Name); err != nil {
		return nil, err
	}
	if ttx.Drop {
		if ttx.Define != nil || ttx.Reset != "" || len(ttx.Changes) > 0 || ttx.Stage != nil || ttx.Phase != "" || ttx.Cursor != "" {
			return nil, fmt.Errorf("commit: table %s: Drop cannot be combined with other work in one TableTx", ttx.Name)
		}
		if base != nil {
			w.garbage = append(w.garbage, base.Objects()...)
		}
		return nil, nil
	}
	var ts *TableState
	if base != nil {
		c := *base
		ts = &c
	}
	if ttx.Define != nil {
		d := ttx.Define
		if d.Source == nil {
			return nil, fmt.Errorf("commit: table %s: Define without a Source schema", ttx.Name)
		}
		if d.Source.Name != ttx.Name {
			return nil, fmt.Errorf("commit: table %s: Define describes table %q", ttx.Name, d.Source.Name)
		}
		opts, err := l.f.Options(*d)
		if err != nil {
			return nil, err
		}
		switch {
		case ts == nil:
			cols, err := l.f.Layout(nil, nil, d.Source)
			if err != nil {
				return nil, err
			}
			ts = &TableState{Name: ttx.Name, Options: opts, Source: d.Source, Columns: cols, Phase: InProgress, Generation: 1}
		case ttx.Reset != "":
			ts.Options, ts.Source = opts, d.Source
		default:
			if opts != ts.Options {
				return nil, &LayoutError{Table: ttx.Name, Problem: fmt.Sprintf("the options changed from %+v to %+v", ts.Options, opts)}
			}
			cols, err := l.f.Layout(ts.Columns, ts.Source, d.Source)
			if err != nil {
				return nil, err
			}
			if !sameSource(ts.Source, d.Source) {
				ts.Described = now
			}
			ts.Columns, ts.Source = cols, d.Source
		}
		if base == nil || ttx.Reset != "" {
			ts.Described = now
		}
	}
	if ts == nil {
		return nil, fmt.Errorf("commit: table %s is not in the lake: its first commit must carry Define", ttx.Name)
	}
	if ttx.Reset != "" && base == nil {
		ts.Reason = ttx.Reset
	}
	if ttx.Reinit != "" {
		if base == nil || ttx.Reset != "" {
			return nil, fmt.Errorf("commit: table %s: Reinit needs a table the lake has, and no Reset in the same TableTx", ttx.Name)
		}
		ts.Reinit = ttx.Reinit
	}
	if ttx.Reset != "" && base != nil {
		w.garbage = append(w.garbage, base.Objects()...)
		cols, err := l.f.Layout(nil, nil, ts.Source)
		if err != nil {
			return nil, err
		}
		*ts = TableState{Name: ts.Name, Options: ts.Options, Source: ts.Source, Columns: cols, Phase: InProgress, Reason: ttx.Reset, Generation: base.Generation + 1, Changed: now, Described: now}
	}
	if len(ttx.Changes) > 0 {
		if ttx.Stage != nil && hasTruncate(ttx.Changes) {
			return nil, fmt.Errorf("commit: table %s: a truncate in Changes cannot precede a Stage; add it to the stage (Stage.Add)", ttx.Name)
		}
		written, err := l.f.Write(ctx, ts, applyTruncates(ts, ttx.Changes, now, w), now)
		w.written = append(w.written, written...)
		if err != nil {
			return nil, err
		}
		ts.Changed = now
	}
	if ttx.Stage != nil {
		if err := l.applyStage(ctx, ts, ttx.Stage, now, w); err != nil {
			return nil, err
		}
		ts.Changed = now
	}
	if ttx.Cursor != "" {
		ts.Cursor = ttx.Cursor
		ts.FollowsStream = false
	}
	if ttx.Follow {
		ts.FollowsStream = true
	}
	switch ttx.Phase {
	case "":
	case InProgress, Completed, Failed:
		ts.Phase = ttx.Phase
		ts.Reason = ttx.Reason
		if ttx.Phase == Completed && ts.InitialSyncCompleted.IsZero() {
			ts.InitialSyncCompleted = now
		}
	default:
		return nil, fmt.Errorf("commit: table %s: unknown phase %q", ttx.Name, ttx.Phase)
	}
	if ts.Phase != Completed || ts.Reinit != "" {
		ts.FollowsStream = false
	}
	if ttx.CaughtUp {
		ts.LastSynchronized = now
	}
	return ts, nil
}

// sameSource reports whether two source descriptions are equal as the
// state records them (JSON), so that a restart's Define of an unchanged
// table does not move its metadata Timestamp.
func sameSource(a, b *schema.Table) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// Objects lists every object the table state names: its files, change
// files and snapshots.
func (ts *TableState) Objects() []string {
	var out []string
	for _, f := range ts.Files {
		out = append(out, f.Path)
	}
	for _, f := range ts.Changes {
		out = append(out, f.Path)
	}
	for _, s := range ts.Snapshots {
		for _, f := range s.Files {
			out = append(out, f.Path)
		}
	}
	return out
}
