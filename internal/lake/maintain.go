package lake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/store"
)

// Maintain does the deferred work: the derived files (model.json, metadata,
// incremental folders) of the tables committed since the last round,
// compaction of in-place tables, merging of small files, snapshots, and
// deletion of garbage after the grace period. It prepares new objects
// without the commit lock, several tables at a time, and publishes each
// step for all tables in one commit, so commits proceed meanwhile and a
// round costs a few commit records whatever the number of tables.
func (l *Lake) Maintain(ctx context.Context) error {
	_, err := l.maintain(ctx, false)
	return err
}

// Settle is the maintenance of a writer about to stop (sync --once): no
// later round will fold what it leaves, so it compacts a table with
// CompactRows pending change rows even while changes still arrive, and
// runs rounds (each folding a bounded number of rows) until nothing is
// due.
func (l *Lake) Settle(ctx context.Context) error {
	for {
		compacted, err := l.maintain(ctx, true)
		if err != nil || !compacted {
			return err
		}
	}
}

// maintain runs one round of Maintain and reports whether it compacted
// a table; settle makes compaction due however recent the last change.
func (l *Lake) maintain(ctx context.Context, settle bool) (bool, error) {
	if l.closed.Load() {
		return false, errClosed
	}
	l.maintainMu.Lock()
	defer l.maintainMu.Unlock()
	var errs []error
	if err := l.flushDerived(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.collectGarbage(ctx); err != nil {
		errs = append(errs, err)
	}
	now := l.opts.Now()
	due := map[string]bool{}
	for name, ts := range l.State().Tables {
		due[name] = l.snapshotDue(ts, now)
	}
	// Step 1: compaction, or merging of change files or small files where
	// nothing is compacted.
	var compacted atomic.Bool
	mayWork := func(ts *TableState) bool {
		return l.compactionDue(ts, now, due[ts.Name], settle) || len(ts.Changes) >= changeFilesToMerge ||
			!l.opts.Incremental.Enabled && mayMergeFiles(ts)
	}
	errs = append(errs, l.step(ctx, mayWork, func(ts *TableState) (work, error) {
		if l.compactionDue(ts, now, due[ts.Name], settle) {
			limit := foldFactor * int64(l.opts.CompactRows)
			switch {
			case due[ts.Name]:
				limit = math.MaxInt64
			case settle:
				limit *= 2
			}
			c, err := l.compact(ctx, ts, limit)
			if err != nil {
				return nil, fmt.Errorf("compacting table %s: %w", ts.Name, err)
			}
			compacted.Store(true)
			return c, nil
		}
		if len(ts.Changes) >= changeFilesToMerge {
			return l.mergeChanges(ctx, ts)
		}
		if l.opts.Incremental.Enabled {
			// Files stay in the folder of their interval.
			return nil, nil
		}
		c, err := l.mergeSmallFiles(ctx, ts, settle)
		if c == nil || err != nil {
			return nil, err
		}
		return c, nil
	})...)
	// Step 2: snapshots. A snapshot copies the partition files, which
	// always hold the table as of one commit (compactions are atomic);
	// step 1 folded every change committed before this round, so they
	// hold it as of then. Change files committed during step 1 are left
	// for the next snapshot: waiting for none would starve snapshots of a
	// table that changes every second. A table whose compaction failed
	// still has older change files and is skipped.
	snapshotDue := func(ts *TableState) bool { return due[ts.Name] && !l.opts.Incremental.Enabled }
	errs = append(errs, l.step(ctx, snapshotDue, func(ts *TableState) (work, error) {
		if !due[ts.Name] || l.opts.Incremental.Enabled {
			return nil, nil
		}
		for _, f := range ts.Changes {
			if f.Written.Before(now) {
				return nil, nil
			}
		}
		snap, err := l.takeSnapshot(ctx, ts, now)
		if err != nil {
			return nil, fmt.Errorf("snapshot of table %s: %w", ts.Name, err)
		}
		return &snapshotWork{table: ts.Name, generation: ts.Generation, snap: snap, keep: l.opts.SnapshotsToKeep}, nil
	})...)
	// Again, for what this round committed.
	if err := l.flushDerived(ctx); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	return compacted.Load() && err == nil, err
}

// compactQuiet is how long a table must go without a new change file for
// its pending rows alone to make a compaction due. While a bulk change
// streams in, folding every CompactRows rows rewrote the same partition
// files again and again and took the CPU the stream needed (a 1M-row
// update: five compactions during the stream, and the stream 35% slower
// than pg_recvlogical); CompactAge still bounds how stale the partition
// files get.
const compactQuiet = time.Second

func (l *Lake) compactionDue(ts *TableState, now time.Time, snapshotDue, settle bool) bool {
	n := len(ts.Changes)
	if n == 0 {
		return false
	}
	var rows int64
	for _, f := range ts.Changes {
		rows += f.Rows
	}
	quiet := settle || now.Sub(ts.Changes[n-1].Written) >= compactQuiet
	return snapshotDue || (rows >= int64(l.opts.CompactRows) && quiet) || now.Sub(ts.Changes[0].Written) >= l.opts.CompactAge
}

// work is maintenance of one table, prepared without the commit lock.
type work interface {
	tableName() string
	// apply returns the table's new state and the objects it stops
	// naming, or false when the table was re-initialised meanwhile.
	apply(ts *TableState, now time.Time) (*TableState, []string, bool)
	// written lists the new objects, deleted when the work is dropped.
	written() []string
}

// maintainWorkers bounds how many tables Maintain prepares at once; a
// variable so that the golden test makes object names deterministic.
var maintainWorkers = 4

// mayMergeFiles reports whether ts has enough partition files for
// mergeSmallFiles to find a merge: two in a published file of an
// append-only table, smallFilesToMerge in a partition of an in-place one.
func mayMergeFiles(ts *TableState) bool {
	if ts.Options.AppendOnly {
		return len(ts.Files) >= 2
	}
	return len(ts.Files) >= smallFilesToMerge
}

// step prepares work with prepare for every table that mayWork, a cheap
// test of whether prepare can find any (an idle round of thousands of
// tables starts no goroutine per table, #16), in parallel, then publishes
// all of it in one commit. A table whose preparation fails is reported and
// skipped; the others go on.
func (l *Lake) step(ctx context.Context, mayWork func(ts *TableState) bool, prepare func(ts *TableState) (work, error)) []error {
	s := l.State()
	names := sortedTables(s)
	works := make([]work, len(names))
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maintainWorkers)
	for i, name := range names {
		ts := s.Tables[name]
		if !mayWork(ts) {
			continue
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			w, err := prepare(ts)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return nil
			}
			works[i] = w
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		errs = append(errs, err)
	}
	var ready []work
	for _, w := range works {
		if w != nil {
			ready = append(ready, w)
		}
	}
	if err := l.publish(ctx, ready); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// publish commits prepared work in one commit record, on top of whatever
// commits happened meanwhile. Work on a table that was dropped or reset in
// between is dropped and its objects deleted.
func (l *Lake) publish(ctx context.Context, works []work) error {
	if len(works) == 0 {
		return nil
	}
	var dropped []string
	err := l.commitSwap(ctx, func(cur *State, now time.Time) (*record, error) {
		rec := &record{Tables: map[string]*TableState{}}
		var garbage []string
		for _, w := range works {
			ts := rec.Tables[w.tableName()]
			if ts == nil {
				ts = cur.Tables[w.tableName()]
			}
			var nts *TableState
			var g []string
			ok := ts != nil
			if ok {
				nts, g, ok = w.apply(ts, now)
			}
			if !ok {
				dropped = append(dropped, w.written()...)
				continue
			}
			rec.Tables[w.tableName()] = nts
			garbage = append(garbage, g...)
		}
		if len(rec.Tables) == 0 {
			return nil, nil
		}
		rec.Garbage = appendGarbage(cur.Garbage, garbage, now)
		return rec, nil
	})
	if err != nil && !errors.Is(err, errUncertain) {
		for _, w := range works {
			dropped = append(dropped, w.written()...)
		}
	}
	l.deleteQuietly(ctx, dropped)
	if err != nil {
		return fmt.Errorf("committing maintenance: %w", err)
	}
	return nil
}

// Unlink removes lakelink from the lake in st. It always deletes lakelink's
// own state under _lakelink/ (commit log, checkpoints, change files) and the
// objects waiting for deletion; with deleteData it deletes everything
// lakelink wrote: the tables' folders, snapshots, model.json, the metadata
// folders and incremental folders. Without deleteData the Synapse-layout
// lake stays readable by other consumers; changes not yet compacted into
// the partition files are lost, so stop the sync after a Maintain that left
// no change files. The sync must not be running.
func Unlink(ctx context.Context, st store.Store, deleteData bool) error {
	s, err := ReadState(ctx, st)
	if err != nil {
		return err
	}
	prefixes := []string{stateDir}
	for _, g := range s.Garbage {
		prefixes = append(prefixes, g.Path)
	}
	if deleteData {
		prefixes = append(prefixes, modelName, trickleDir, optionsetDir, changelogDir)
		for name := range s.Tables {
			prefixes = append(prefixes, name+"/")
		}
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("unlink: listing the lake: %w", err)
	}
	for _, o := range objs {
		del := false
		for _, p := range prefixes {
			if strings.HasPrefix(o.Name, p) {
				del = true
			}
		}
		// Incremental folders without data are in no state.
		del = del || deleteData && isIncrementalObject(o.Name)
		if !del {
			continue
		}
		// The commit log goes last, so that an interrupted unlink can be
		// run again: the state that names the rest survives until then.
		if strings.HasPrefix(o.Name, logDir) || strings.HasPrefix(o.Name, checkpointDir) {
			continue
		}
		if err := st.Delete(ctx, o.Name); err != nil {
			return fmt.Errorf("unlink: deleting %s: %w", o.Name, err)
		}
	}
	// Newest first, so that an interruption leaves a readable prefix.
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		if strings.HasPrefix(o.Name, logDir) || strings.HasPrefix(o.Name, checkpointDir) {
			if err := st.Delete(ctx, o.Name); err != nil {
				return fmt.Errorf("unlink: deleting %s: %w", o.Name, err)
			}
		}
	}
	return nil
}
