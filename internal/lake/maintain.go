package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// maintain runs one round of Maintain and reports whether the format
// asks for another (Format.Plan); settle makes its work due however
// recent the last change.
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
	steps, again := l.f.Plan(l.State(), l.opts.Now(), settle)
	for _, st := range steps {
		errs = append(errs, l.step(ctx, st)...)
	}
	// Again, for what this round committed.
	if err := l.flushDerived(ctx); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	return again() && err == nil, err
}

// maintainWorkers bounds how many tables Maintain prepares at once; a
// variable so that the golden test makes object names deterministic.
var maintainWorkers = 4

// step prepares the work of st for every table it is Due for (an idle
// round of thousands of tables starts no goroutine per table, #16), in
// parallel, then publishes all of it in one commit. A table whose
// preparation fails is reported and skipped; the others go on.
func (l *Lake) step(ctx context.Context, st Step) []error {
	s := l.State()
	names := s.TableNames()
	works := make([]Work, len(names))
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maintainWorkers)
	for i, name := range names {
		ts := s.Tables[name]
		if !st.Due(ts) {
			continue
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			w, err := st.Prepare(ctx, ts)
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
	var ready []Work
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
func (l *Lake) publish(ctx context.Context, works []Work) error {
	if len(works) == 0 {
		return nil
	}
	var dropped []string
	err := l.commitSwap(ctx, func(cur *State, now time.Time) (*record, error) {
		rec := &record{Tables: map[string]*TableState{}}
		var garbage []string
		for _, w := range works {
			ts := rec.Tables[w.Table()]
			if ts == nil {
				ts = cur.Tables[w.Table()]
			}
			var nts *TableState
			var g []string
			ok := ts != nil
			if ok {
				nts, g, ok = w.Apply(ts, now)
			}
			if !ok {
				dropped = append(dropped, w.Written()...)
				continue
			}
			rec.Tables[w.Table()] = nts
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
			dropped = append(dropped, w.Written()...)
		}
	}
	l.deleteQuietly(ctx, dropped)
	if err != nil {
		return fmt.Errorf("committing maintenance: %w", err)
	}
	return nil
}

// Unlink removes lakelink from the lake in st, written in format f. It
// always deletes lakelink's own state under _lakelink/ (commit log,
// checkpoints, the format's objects kept there) and the objects waiting for
// deletion; with deleteData it deletes everything lakelink wrote: what f
// Owns as output (the Synapse format: the tables' folders, snapshots,
// model.json, the metadata folders and incremental folders). Without
// deleteData the lake stays readable by the format's other consumers;
// changes not yet compacted into the partition files are lost, so stop the
// sync after a Maintain that left no change files. The sync must not be
// running.
func Unlink(ctx context.Context, st store.Store, f Format, deleteData bool) error {
	s, err := ReadState(ctx, st)
	if err != nil {
		return err
	}
	if f == nil {
		f = newCSVFormat(Options{})
	}
	prefixes := []string{stateDir}
	for _, g := range s.Garbage {
		prefixes = append(prefixes, g.Path)
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
		if _, output := f.Owns(o.Name, s); deleteData && output {
			del = true
		}
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
