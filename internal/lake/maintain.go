package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lakelink/lakelink/internal/store"
)

// Maintain does the deferred work: compaction of in-place tables, snapshots,
// deletion of garbage after the grace period, and a retry of derived files
// that failed to update. It prepares new objects without the commit lock and
// takes it only to commit the swap, so commits proceed meanwhile.
func (l *Lake) Maintain(ctx context.Context) error {
	if l.closed.Load() {
		return errClosed
	}
	l.maintainMu.Lock()
	defer l.maintainMu.Unlock()
	var errs []error
	if err := l.collectGarbage(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, name := range sortedTables(l.State()) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.maintainTable(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	if l.derived.stale || l.opts.Incremental.Enabled {
		if err := l.writeDerived(ctx, l.state.Load(), &record{}); err != nil {
			errs = append(errs, fmt.Errorf("updating model.json and metadata: %w", err))
		}
	}
	l.mu.Unlock()
	return errors.Join(errs...)
}

// maintainTable compacts a table when its pending changes pass a threshold
// or a snapshot is due, merges small files of append-only tables, and takes
// a due snapshot.
func (l *Lake) maintainTable(ctx context.Context, name string) error {
	ts := l.State().Tables[name]
	if ts == nil {
		return nil
	}
	now := l.opts.Now()
	due := l.snapshotDue(ts, now)
	if len(ts.Changes) > 0 {
		var rows int64
		for _, f := range ts.Changes {
			rows += f.Rows
		}
		if due || rows >= int64(l.opts.CompactRows) || now.Sub(ts.Changes[0].Written) >= l.opts.CompactAge {
			c, err := l.compact(ctx, ts, due)
			if err != nil {
				return fmt.Errorf("compacting table %s: %w", name, err)
			}
			if err := l.swapCompaction(ctx, c); err != nil {
				return fmt.Errorf("committing the compaction of table %s: %w", name, err)
			}
		}
	}
	if l.opts.Incremental.Enabled {
		// Files stay in the folder of their interval; no snapshots.
		return nil
	}
	if err := l.mergeSmallFiles(ctx, name); err != nil {
		return err
	}
	ts = l.State().Tables[name]
	if ts == nil || !due || len(ts.Changes) > 0 {
		// Changes that arrived during the compaction are taken at the
		// next round: a snapshot copies partition files only.
		return nil
	}
	snap, err := l.takeSnapshot(ctx, ts, now)
	if err != nil {
		return fmt.Errorf("snapshot of table %s: %w", name, err)
	}
	if err := l.swapSnapshot(ctx, name, ts.Generation, snap); err != nil {
		return fmt.Errorf("committing the snapshot of table %s: %w", name, err)
	}
	return nil
}

// Unlink deletes what lakelink wrote in the lake in st: its state under
// _lakelink/ (commit log, checkpoints, change files), model.json, the
// metadata folders, incremental folders, and, when deleteData, every data
// object of the tables (partition files and snapshots). Without deleteData
// the Synapse-layout data stays readable; changes not yet compacted into it
// are lost, so run Maintain until no table has change files first.
func Unlink(ctx context.Context, st store.Store, deleteData bool) error {
	s, err := ReadState(ctx, st)
	if err != nil {
		return err
	}
	prefixes := []string{stateDir, modelName, trickleDir, optionsetDir, changelogDir}
	if deleteData {
		for _, f := range incrementalFolders(s) {
			prefixes = append(prefixes, f+"/")
		}
		for name := range s.Tables {
			prefixes = append(prefixes, name+"/")
		}
		for _, g := range s.Garbage {
			prefixes = append(prefixes, g.Path)
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
