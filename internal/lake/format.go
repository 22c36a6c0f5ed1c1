package lake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// Format is a table format: how a table's rows become objects in the
// store, the maintenance those objects need, and the files derived from a
// committed state for the format's readers (docs/architecture.md). The
// protocol decides what is committed and when, and keeps its invariants
// (docs/commit-protocol.md) whatever the format: the format only writes new
// objects under fresh names and reports them as Files; it never commits,
// and it never deletes or replaces an object a state names.
//
// A Format value serves one Lake (Open binds it) and is called by it only:
// Write and Stage under the commit lock or by the Stage's owner, Plan's
// work and Derive by Maintain, one round at a time. Owns is the exception:
// it must answer before Open too (Unlink).
type Format interface {
	// Open binds the format to the lake it serves, once, before any
	// other call but Owns: o lends it the store, the clock and fresh
	// object names; s is the committed state and objs every object in the
	// store, listed for the orphan sweep.
	Open(o *Objects, s *State, objs []store.Object) error
	// Options returns the options the format applies to a table defined
	// with d (what TableState.Options holds), or an error naming the
	// table when it cannot store it so.
	Options(d Definition) (TableOptions, error)
	// Layout derives the column layout of a new table described by t
	// (old nil) or evolves old, the layout of the table described by
	// prev, for t (columns are matched by their source id where both
	// descriptions carry one, so a rename is followed in place): the layout only grows (columns
	// added at the end, dropped ones kept and marked), so that objects
	// written under an older layout stay readable. A change it cannot
	// follow in place is a *LayoutError.
	Layout(old []Column, prev, t *schema.Table) ([]Column, error)
	// Write writes changes of table ts, a commit at now, as new objects
	// and adds them to ts, the table's new state in that commit (Files,
	// Changes, Rows; its slices are shared with older states, so they
	// are replaced, never modified in place). A truncate among changes
	// reaches it only in an append-only table, where it is the history's
	// record of the removal of every live record. written lists every
	// object it created, also on an error: the protocol deletes them when
	// the commit fails.
	Write(ctx context.Context, ts *TableState, changes []source.Change, now time.Time) (written []string, err error)
	// Stage returns the writer of a Stage of ts: rows written across
	// several batches for one later commit (see Stage). bounded says no
	// commit comes before the stage's end (StageTx, StageReplace).
	Stage(ts *TableState, bounded bool) StageWriter
	// Plan returns the steps of one maintenance round of s at now (settle:
	// the writer is about to stop, nothing may wait for a later round).
	// Maintain runs the steps in order, each for every table at once, and
	// commits each step's work in one record. again, asked after the
	// round, says Settle must run another.
	Plan(s *State, now time.Time, settle bool) (steps []Step, again func() bool)
	// Derive writes the files derived from s for the format's readers
	// (model.json, metadata): those of the tables in dirty, committed
	// since the last call, or of every table when all. It never changes
	// an object a state names. A failure is retried with all set.
	Derive(ctx context.Context, s *State, dirty map[string]bool, all bool) error
	// Owns says whether the object name is the format's: data, an
	// immutable object that only a state names (the orphan sweep deletes
	// one no state names once it is older than the grace period), or
	// output, a file Derive writes or a state's table owns (Unlink with
	// deleteData deletes it). Neither is someone else's file, never
	// touched.
	Owns(name string, s *State) (data, output bool)
}

// StageWriter is the format's half of a Stage: it writes the staged rows.
// The protocol's half (Stage) checks what may be staged and committed.
type StageWriter interface {
	// Add writes changes under the layout of ts (as in Format.Write,
	// truncates reach it only in an append-only table, where ts.Files
	// are the table's committed files).
	Add(ctx context.Context, ts *TableState, changes []source.Change) error
	// Flush closes the open objects (in the background): rows added
	// from now on go to new ones, for a layout change.
	Flush()
	// Full reports whether the stage needs a commit now.
	Full() bool
	// Finish closes every object and waits until they are published. No
	// row is added after it; a second call returns the same.
	Finish() error
	// Apply adds what the stage wrote to ts, the table's new state in
	// the commit at now that names the stage, after Finish succeeded. It
	// may write new objects first (the Synapse format copies files
	// written in an incremental folder that was finished meanwhile into
	// the commit's folder): they are the stage's, deleted by Discard like
	// the rest. garbage lists the objects the stage wrote that ts does not
	// name (what such a copy replaces), for the commit's record: the
	// protocol deletes them after the grace period. On an error ts is
	// unchanged and the stage can be applied again or discarded.
	Apply(ctx context.Context, ts *TableState, now time.Time) (garbage []string, err error)
	// Discard deletes every object written so far; the writer stays
	// usable (a truncate of an in-place table in the stage).
	Discard()
}

// Step is one step of a maintenance round (Format.Plan).
type Step struct {
	// Due is a cheap test of whether Prepare can find work for ts: an
	// idle round of thousands of tables starts no goroutine per table.
	Due func(ts *TableState) bool
	// Prepare prepares the work of one table without the commit lock,
	// several tables at once; nil work means there is none.
	Prepare func(ctx context.Context, ts *TableState) (Work, error)
}

// Work is maintenance of one table, prepared without the commit lock and
// committed by Maintain on top of whatever was committed meanwhile.
type Work interface {
	// Table names the table the work is for.
	Table() string
	// Apply returns the table's new state and the objects it stops
	// naming (garbage), or false when the work no longer applies (the
	// table was re-initialised meanwhile). ts is the current state,
	// commits made since Prepare included: their effects must be kept.
	Apply(ts *TableState, now time.Time) (*TableState, []string, bool)
	// Written lists the new objects, deleted when the work is dropped.
	Written() []string
}

// Objects is what the protocol lends a Format: the store, the clock and
// fresh object names.
type Objects struct{ l *Lake }

// Store returns the lake's store.
func (o *Objects) Store() store.Store { return o.l.st }

// Now returns the lake's clock's time (Options.Now).
func (o *Objects) Now() time.Time { return o.l.opts.Now() }

// Logger returns the lake's logger.
func (o *Objects) Logger() *slog.Logger { return o.l.log }

// State returns the latest committed state.
func (o *Objects) State() *State { return o.l.State() }

// Discard deletes objects no state names (what a failed step wrote),
// logging a failure: the orphan sweep of a later Open removes them then.
func (o *Objects) Discard(ctx context.Context, names []string) { o.l.deleteQuietly(ctx, names) }

// Unique returns a token for a new object's name, "<session>_<n>": no
// object the lake holds or ever held carries "_<session>_" (invariant 2),
// and n counts within the session. A name made with it is used once.
func (o *Objects) Unique() string {
	return o.l.session + "_" + strconv.FormatInt(o.l.counter.Add(1), 10)
}

// ErrLayout is wrapped by every *LayoutError.
var ErrLayout = errors.New("incompatible layout change")

// LayoutError reports a schema change the format cannot follow in place (a
// column changed type, a name collides with a system column, the table
// options changed): the table must be re-initialised (TableTx.Reset).
type LayoutError struct {
	Table, Column string
	Problem       string
}

func (e *LayoutError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("table %s: %s; re-initialise the table (reset) to apply it", e.Table, e.Problem)
	}
	return fmt.Sprintf("table %s, column %s: %s; re-initialise the table (reset) to apply it", e.Table, e.Column, e.Problem)
}

func (e *LayoutError) Unwrap() error { return ErrLayout }

// ValueError reports a value that does not fit its column, or a change whose
// values do not fit the layout (Column is then empty when no one column is
// to blame). The change is not written: lakelink never drops or coerces a
// value silently.
type ValueError struct {
	Table, Column, ID string
	Err               error
}

func (e *ValueError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("table %s, Id %s: %v", e.Table, e.ID, e.Err)
	}
	return fmt.Sprintf("table %s, column %s, Id %s: %v; lakelink cannot write this value", e.Table, e.Column, e.ID, e.Err)
}

func (e *ValueError) Unwrap() error { return e.Err }
