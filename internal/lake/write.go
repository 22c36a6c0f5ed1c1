package lake

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// Write implements Format: it encodes changes and writes them as new
// objects:
//   - append-only tables: one row per change in new partition files (a
//     truncate becomes the deletes of the records live at its place,
//     truncate.go);
//   - in-place tables during the initial copy: upserts in new partition
//     files (nothing to merge), deletes in a change file;
//   - in-place tables afterwards: one change file, merged on read and
//     folded into the partition files by compaction (Maintain).
//
// Rows are encoded into memory first (the batch is in memory anyway), so
// that one object is open at a time whatever the partitions. The new
// partition files get their Synapse names (publish.go).
func (l *csvFormat) Write(ctx context.Context, ts *TableState, changes []source.Change, now time.Time) ([]string, error) {
	var written []string
	if slices.ContainsFunc(changes, func(c source.Change) bool { return c.Truncate }) {
		live, err := l.liveRecords(ctx, ts, slices.Concat(ts.Files, ts.Changes))
		if err != nil {
			return nil, err
		}
		changes = live.expand(ts.Name, changes)
	}
	enc, err := encodeChanges(ts, changes, now)
	defer enc.recycle()
	if err != nil {
		return nil, err
	}
	parts, changeBuf := enc.parts, enc.change
	names := make([]string, 0, len(parts))
	for p := range parts {
		names = append(names, p)
	}
	sort.Strings(names)
	files := append([]File(nil), ts.Files...)
	b := store.NewBatch(l.st)
	for _, p := range names {
		for _, chunk := range parts[p].split(l.opts.MaxFileRows, maxFileBytes) {
			f, err := writeObject(ctx, b, l.partitionName(l.tableDir(ts.Name, now), ts, p), chunk.data, chunk.rows, now, &written)
			if err != nil {
				return written, err
			}
			f.Partition = p
			files = append(files, f)
		}
	}
	ts.Files = files
	if rows := len(changeBuf.ends); rows > 0 {
		f, err := writeObject(ctx, b, l.changeName(ts), changeBuf.data, int64(rows), now, &written)
		if err != nil {
			return written, err
		}
		ts.Changes = append(append([]File(nil), ts.Changes...), f)
	}
	// The commit names these files next: their folders are synced first,
	// once each (store.Batch).
	if err := b.Sync(ctx); err != nil {
		return written, fmt.Errorf("table %s: %w", ts.Name, err)
	}
	ts.Rows += rowsAdded(ts, enc, len(changes))
	l.namer().name(ts)
	return written, nil
}

// rowsAdded is what n changes, encoded as enc, add to ts.Rows: every row of
// an append-only table; the upserts of an in-place table's initial copy
// (afterwards its count changes only by compaction).
func rowsAdded(ts *TableState, enc *encoded, n int) int64 {
	switch {
	case ts.Options.AppendOnly:
		return int64(n)
	case ts.Phase == InProgress:
		return enc.upserts
	}
	return 0
}

// maxFileBytes bounds a partition file's size, so that a rewrite touches a
// bounded amount of data even when rows are large; a variable for tests.
var maxFileBytes = 128 << 20

// partBuf accumulates the encoded rows of one file, remembering where each
// row ends so that it can be split into files of bounded row counts.
type partBuf struct {
	data []byte
	ends []int
}

// partBufs recycles partBufs across commits: an initial copy commits
// batches of similar size over and over, and growing fresh buffers for each
// one (and clearing the memory) cost more than encoding the rows. A pool
// rather than a per-lake buffer lets the GC free them when commits stop.
var partBufs = sync.Pool{New: func() any { return &partBuf{} }}

// endRow marks the end of the row just appended to data.
func (b *partBuf) endRow() { b.ends = append(b.ends, len(b.data)) }

func getPartBuf() *partBuf { return partBufs.Get().(*partBuf) }

// putPartBuf recycles b; nothing may refer to its memory any more (store
// writers do not keep what they are given).
func putPartBuf(b *partBuf) {
	b.data, b.ends = b.data[:0], b.ends[:0]
	partBufs.Put(b)
}

type chunk struct {
	data []byte
	rows int64
}

// split cuts the rows into chunks of at most maxRows rows and, unless a
// single row is larger, maxBytes bytes.
func (b *partBuf) split(maxRows int, maxBytes int) []chunk {
	var out []chunk
	all := b.data
	start, first := 0, 0
	for i, end := range b.ends {
		if i > first && (i-first >= maxRows || end-start > maxBytes) {
			out = append(out, chunk{data: all[start:b.ends[i-1]], rows: int64(i - first)})
			start, first = b.ends[i-1], i
		}
	}
	if first < len(b.ends) {
		out = append(out, chunk{data: all[start:], rows: int64(len(b.ends) - first)})
	}
	return out
}

// writeObject writes one new data object and adds its name to written.
func writeObject(ctx context.Context, st store.Store, name string, data []byte, rows int64, now time.Time, written *[]string) (File, error) {
	if err := store.Put(ctx, st, name, data); err != nil {
		return File{}, fmt.Errorf("writing %s: %w", name, err)
	}
	*written = append(*written, name)
	return File{Path: name, Rows: rows, Bytes: int64(len(data)), Written: now}, nil
}

// partitionName names a new partition file:
//
//	_lakelink/data/<dir>/<partition>_<generation>_<session>_<n>.csv
//
// dir is the table's name, inside the interval's folder in incremental mode.
// The files live under _lakelink/, out of the table folders, where their
// Synapse-named copies are published (publish.go). The session
// token is random per Open and n counts within it, so names never collide,
// not with a crashed writer's orphans and not with a concurrent writer that
// is about to lose the commit race: no object is ever overwritten.
func (l *csvFormat) partitionName(dir string, ts *TableState, partition string) string {
	return fmt.Sprintf("%s%s/%s_%d_%s.csv", dataDir, dir, partition, ts.Generation, l.o.Unique())
}

// changeName names a new merge-on-read change file, kept out of the table
// folder so that readers of <table>/*.csv never see it.
func (l *csvFormat) changeName(ts *TableState) string {
	return fmt.Sprintf("%s%s/%d_%s.csv", changesDir, ts.Name, ts.Generation, l.o.Unique())
}

// A truncate of an append-only table appends a delete of every record live
// at its place (latest version not a delete), with the truncate's version,
// in Id order: Synapse records a removal in such a table as a row with
// IsDelete = True, and its published files only grow. Finding the live
// records reads the table's files.

// liveRecord is the latest version of one record of an append-only table.
type liveRecord struct {
	version int64
	deleted bool
}

// liveSet maps the Ids of an append-only table to their latest version.
type liveSet map[string]liveRecord

// liveRecords reads files, in order, into the latest version of each Id.
func (l *csvFormat) liveRecords(ctx context.Context, ts *TableState, files []File) (liveSet, error) {
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
