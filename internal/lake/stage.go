package lake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// Stage writes rows across several batches into objects no state names,
// for one later commit (TableTx.Stage) to name. Three kinds:
//
//   - Stage, the initial copy of a table: a copy committed batch by batch
//     writes one small file per batch (10 000 rows) and a commit record per
//     batch that lists them all; staged, a copy writes files of up to
//     MaxFileRows rows, and a commit every few of them. The engine commits
//     it every few seconds (sync.copyCommitEvery), when Full and at the end
//     of the copy.
//   - StageTx, the changes of one source transaction too large for a batch:
//     written part by part as they arrive (bounded memory), made visible by
//     the one commit at the transaction's end (issue #15, case 10).
//   - StageReplace, a fresh copy of a table built beside its committed data,
//     which readers keep seeing until the one commit that swaps the copy in
//     (TableTx.Reset with the stage; issue #15, case 3).
//
// The format writes the rows (Format.Stage: the Synapse format publishes a
// full file in the background while the rows go on into the next one, so
// that the writer never waits for a file to reach the disk); the Stage
// checks what may be staged and committed. The last two kinds never ask
// for a commit.
//
// Invariants:
//   - every row added is in exactly one file of the stage, open, being
//     published or published, in the order added;
//   - nothing a stage wrote is named by the lake until the commit that
//     carries it, so a crash leaves only orphans (removed by Open) and the
//     writer resumes from the cursor of the last commit;
//   - everything a stage wrote is durable before that commit: the format
//     writes through a store.Batch and syncs it when the writer finishes,
//     each folder once (the Synapse format's seven partition files of a
//     table cost one folder sync, not seven);
//   - a stage belongs to one generation of its table in one phase (and, for
//     StageReplace, to the next generation, whose layout it was begun
//     with): a commit of it after a reset or a phase change is refused;
//   - a commit that fails before its record is written leaves the stage as
//     it was, to be committed again (a retry without another table) or
//     aborted; once a record naming it may have landed, Abort deletes
//     nothing.
type Stage struct {
	l  *Lake
	ts *TableState
	w  StageWriter
	// baseCols is the table's layout when the stage began; Define evolves
	// ts's, which the commit then adopts.
	baseCols []Column
	evolved  bool
	// truncated: an in-place table's rows were truncated in the stage
	// (source.Change.Truncate); its commit empties the table first.
	truncated bool
	// finished: the writer finished (finish ran), ferr holds its outcome;
	// spent: committed (or possibly so) or aborted.
	finished, spent bool
	ferr            error
}

// Stage starts a stage for the initial copy of table name, which must be
// in the lake and in phase InProgress.
func (l *Lake) Stage(name string) (*Stage, error) {
	ts := l.State().Tables[name]
	if ts == nil || ts.Phase != InProgress {
		return nil, fmt.Errorf("stage: table %s is not being copied (it is not in the lake, or its initial copy is over)", name)
	}
	return l.newStage(ts, false), nil
}

// StageTx starts a stage for the changes of one source transaction of
// table name, which must be in the lake with its initial copy done.
func (l *Lake) StageTx(name string) (*Stage, error) {
	ts := l.State().Tables[name]
	if ts == nil || ts.Phase != Completed {
		return nil, fmt.Errorf("stage: table %s does not stream changes (it is not in the lake, or its initial copy is not done)", name)
	}
	return l.newStage(ts, true), nil
}

// StageReplace starts a stage for a fresh copy of table name under d, to be
// committed with TableTx{Reset, Define: d, Stage}: the commit drops the
// table's data and names the stage's files at once, so readers see the old
// data until then and the new data from then on, never an empty or partial
// table.
func (l *Lake) StageReplace(name string, d Definition) (*Stage, error) {
	cur := l.State().Tables[name]
	if cur == nil {
		return nil, fmt.Errorf("stage: table %s is not in the lake: copy it as a new table", name)
	}
	if d.Source == nil || d.Source.Name != name {
		return nil, fmt.Errorf("stage: table %s: a replacement needs the table's own description", name)
	}
	opts, err := l.f.Options(d)
	if err != nil {
		return nil, err
	}
	cols, err := l.f.Layout(nil, nil, d.Source)
	if err != nil {
		return nil, err
	}
	ts := &TableState{Name: name, Options: opts, Source: d.Source, Columns: cols, Phase: InProgress, Generation: cur.Generation + 1}
	return l.newStage(ts, true), nil
}

func (l *Lake) newStage(ts *TableState, bounded bool) *Stage {
	return &Stage{l: l, ts: ts, w: l.f.Stage(ts, bounded), baseCols: ts.Columns}
}

// Define evolves the layout of the stage's rows to come, for a schema
// change in the middle of a source transaction (StageTx): rows staged so far
// keep the layout they were written with (files of their own), the commit
// adopts the evolved layout. A description equal to the current one is a
// no-op; one the layout cannot follow in place is a *LayoutError.
func (s *Stage) Define(d Definition) error {
	if s.finished || s.spent {
		return errors.New("stage: already committed or aborted")
	}
	if d.Source == nil || d.Source.Name != s.ts.Name {
		return fmt.Errorf("stage: table %s: Define needs the table's own description", s.ts.Name)
	}
	if sameSource(s.ts.Source, d.Source) {
		return nil
	}
	opts, err := s.l.f.Options(d)
	if err != nil {
		return err
	}
	if opts != s.ts.Options {
		return &LayoutError{Table: s.ts.Name, Problem: fmt.Sprintf("the options changed from %+v to %+v", s.ts.Options, opts)}
	}
	cols, err := s.l.f.Layout(s.ts.Columns, s.ts.Source, d.Source)
	if err != nil {
		return err
	}
	s.w.Flush()
	ts := *s.ts
	ts.Columns, ts.Source = cols, d.Source
	s.ts, s.evolved = &ts, true
	return nil
}

// Add writes changes into the stage. A truncate among them applies as in
// a commit (truncate.go): in an in-place table it discards what the stage
// holds and makes its commit empty the table first; in an append-only one
// the format records the removal of the records live at its place. On an
// error the stage is spent: Abort it.
func (s *Stage) Add(ctx context.Context, changes []source.Change) error {
	if s.finished || s.spent {
		return errors.New("stage: already committed or aborted")
	}
	if !s.ts.Options.AppendOnly && hasTruncate(changes) {
		last := -1
		for i, c := range changes {
			if c.Truncate {
				last = i
			}
		}
		s.w.Discard()
		s.truncated = true
		changes = changes[last+1:]
	}
	return s.w.Add(ctx, s.ts, changes)
}

// Full reports whether the stage needs a commit now (the format's writer
// keeps many objects open). A stage of a transaction or a replacement is
// never Full.
func (s *Stage) Full() bool { return s.w.Full() }

// finish finishes the writer; no row can be added after it. A second call
// returns the same (a commit retried without another table).
func (s *Stage) finish() error {
	if s.spent {
		return errors.New("stage: already committed or aborted")
	}
	if !s.finished {
		s.finished = true
		s.ferr = s.w.Finish()
	}
	return s.ferr
}

// Abort discards the stage and deletes what it wrote, unless a commit
// record naming it may have landed (then the lake owns its files: a
// record that did not land leaves them to the orphan clean-up).
func (s *Stage) Abort() {
	if s.spent {
		return
	}
	s.spent = true
	s.w.Discard()
}

// applyStage adds the files of stage st to ts, the table's new state in a
// commit w collects, first emptying it when the stage holds a truncate.
// The stage's objects stay the stage's until the record is written (Commit
// then marks it spent).
func (l *Lake) applyStage(ctx context.Context, ts *TableState, st *Stage, now time.Time, w *commitWork) error {
	if st.l != l {
		return fmt.Errorf("commit: table %s: the stage belongs to another lake", ts.Name)
	}
	if st.spent {
		return fmt.Errorf("commit: table %s: the stage was already committed or aborted", ts.Name)
	}
	if st.ts.Name != ts.Name || st.ts.Generation != ts.Generation || ts.Phase != st.ts.Phase || ts.Options != st.ts.Options {
		st.Abort()
		return fmt.Errorf("commit: table %s: the stage was begun for generation %d of the table in phase %s with options %+v; the table is now generation %d in phase %s with options %+v: write it again", ts.Name, st.ts.Generation, st.ts.Phase, st.ts.Options, ts.Generation, ts.Phase, ts.Options)
	}
	if !slices.Equal(ts.Columns, st.baseCols) {
		st.Abort()
		return fmt.Errorf("commit: table %s: the table's layout changed while the stage was written: write it again", ts.Name)
	}
	if err := st.finish(); err != nil {
		return err
	}
	if st.truncated {
		truncateData(ts, now, w)
	}
	if st.evolved {
		if !sameSource(ts.Source, st.ts.Source) {
			ts.Described = now
		}
		ts.Columns, ts.Source = st.ts.Columns, st.ts.Source
	}
	garbage, err := st.w.Apply(ctx, ts, now)
	if err != nil {
		return fmt.Errorf("commit: table %s: applying the stage: %w", ts.Name, err)
	}
	w.garbage = append(w.garbage, garbage...)
	return nil
}
