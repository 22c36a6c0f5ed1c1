package lake

import (
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
// mode) is a history: nothing is dropped, and the truncate reaches the
// format (Format.Write, StageWriter.Add), which records the removal of every
// record live at its place the way its history records removals (the
// Synapse format: a delete row of each, write.go).

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
// in-place table ts: the table is emptied and the changes after the last
// truncate are left to write. An append-only table's truncates are left to
// the format (Format.Write).
func applyTruncates(ts *TableState, changes []source.Change, now time.Time, w *commitWork) []source.Change {
	if ts.Options.AppendOnly || !hasTruncate(changes) {
		return changes
	}
	last := -1
	for i, c := range changes {
		if c.Truncate {
			last = i
		}
	}
	truncateData(ts, now, w)
	return changes[last+1:]
}
