package lake

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// TRUNCATE (source.Change.Truncate) in a commit.
//
// An in-place table is emptied where the truncate stands: its partition and
// change files become garbage (readers of older states keep reading them
// for the grace period, as after any commit), the changes before the
// truncate are void, those after it are written to the empty table. Its
// Generation moves on, so that compaction and snapshot work computed from
// the old files is refused (compaction.apply, snapshotWork.apply) instead of
// bringing the rows back; its layout, options, cursor, phase and snapshots
// (copies of earlier states) stay.
//
// An append-only table (and so every table in incremental-update folder
// mode) is a history: Synapse records a removal there as a row with
// IsDelete = True, and its published files only grow. So a truncate
// appends a delete of every record live at that point (latest version not a
// delete), with the truncate's version, in Id order; nothing is dropped.
// Finding the live records reads the table's files.

// hasTruncate reports whether changes hold a truncate.
func hasTruncate(changes []source.Change) bool {
	return slices.ContainsFunc(changes, func(c source.Change) bool { return c.Truncate })
}

// truncateData empties in-place table ts in the commit w collects: see the
// comment at the top of this file.
func truncateData(ts *TableState, now time.Time, w *commitWork) {
	for _, f := range ts.Files {
		w.garbage = append(w.garbage, f.Path)
	}
	for _, f := range ts.Changes {
		w.garbage = append(w.garbage, f.Path)
	}
	ts.Files, ts.Changes, ts.Rows = nil, nil, 0
	ts.Generation++
	ts.Changed = now
}

// applyTruncates applies the truncates of changes, a commit's changes of
// table ts, and returns the changes left to write. In-place: the table is
// emptied and the changes after the last truncate are left. Append-only:
// each truncate becomes the deletes of the records live at its place.
func (l *Lake) applyTruncates(ctx context.Context, ts *TableState, changes []source.Change, now time.Time, w *commitWork) ([]source.Change, error) {
	if !hasTruncate(changes) {
		return changes, nil
	}
	if !ts.Options.AppendOnly {
		last := -1
		for i, c := range changes {
			if c.Truncate {
				last = i
			}
		}
		truncateData(ts, now, w)
		return changes[last+1:], nil
	}
	live, err := l.liveRecords(ctx, ts, slices.Concat(ts.Files, ts.Changes))
	if err != nil {
		return nil, err
	}
	return live.expand(ts.Name, changes), nil
}

// liveRecord is the latest version of one record of an append-only table.
type liveRecord struct {
	version int64
	deleted bool
}

// liveSet maps the Ids of an append-only table to their latest version.
type liveSet map[string]liveRecord

// liveRecords reads files, in order, into the latest version of each Id.
func (l *Lake) liveRecords(ctx context.Context, ts *TableState, files []File) (liveSet, error) {
	ix := indexesOf(ts)
	live := liveSet{}
	for _, f := range files {
		err := l.scanRecords(ctx, ts.Name, f.Path, ix, func(_ []byte, r rowKey) error {
			id, _, err := unquote(string(r.id))
			if err != nil {
				return fmt.Errorf("table %s: %s: Id: %w", ts.Name, f.Path, err)
			}
			if prev, ok := live[id]; !ok || r.version >= prev.version {
				live[id] = liveRecord{version: r.version, deleted: r.deleted}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("truncating: %w", err)
		}
	}
	return live, nil
}

// expand returns changes with each truncate replaced by a delete of every
// record live at its place, in Id order, and keeps live up to date.
func (live liveSet) expand(table string, changes []source.Change) []source.Change {
	out := make([]source.Change, 0, len(changes))
	for _, c := range changes {
		if !c.Truncate {
			if prev, ok := live[c.ID]; !ok || c.Version >= prev.version {
				live[c.ID] = liveRecord{version: c.Version, deleted: c.Deleted}
			}
			out = append(out, c)
			continue
		}
		var ids []string
		for id, r := range live {
			if !r.deleted {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			out = append(out, source.Change{Table: table, ID: id, Version: c.Version, Deleted: true})
			live[id] = liveRecord{version: c.Version, deleted: true}
		}
	}
	return out
}
