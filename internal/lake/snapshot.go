package lake

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/store"
)

// snapshotDue reports whether Maintain should take a snapshot of ts: once
// the initial copy is complete, then every SnapshotInterval when the data
// changed since the last one.
func (l *csvFormat) snapshotDue(ts *TableState, now time.Time) bool {
	if ts.Phase != Completed || l.opts.SnapshotsToKeep == 0 {
		return false
	}
	n := len(ts.Snapshots)
	if n == 0 {
		return true
	}
	last := ts.Snapshots[n-1].Taken
	return now.Sub(last) >= l.opts.SnapshotInterval && ts.Changed.After(last)
}

// takeSnapshot copies the published files of ts into Snapshot/, one copy
// per published file, named after it:
//
//	<table>/Snapshot/<name>_<unix-epoch>.csv   e.g. 2024_1710496922.csv, 2024_001_1710496922.csv
//
// Consumers group files by the part before the first "_", so a partition's
// copies read as one, and model.json names each entry after the live file
// it copies (<name>). Partition files are immutable, so the store copies
// them without rewriting their bytes where it can (a hard link, a
// server-side copy); only a published file of an append-only table made of
// several files not merged yet is written, as their concatenation. ts is
// one committed state, so the snapshot is the table as of one commit.
//
// The epoch is the first second from now (and after the previous snapshot)
// at which no name of the snapshot is taken by an object the state names,
// garbage waiting for deletion included: a table reset or dropped and
// defined again within a second must not reuse the name of a snapshot its
// garbage will delete.
func (l *csvFormat) takeSnapshot(ctx context.Context, ts *TableState, now time.Time) (*Snapshot, error) {
	epoch := now.Unix()
	if n := len(ts.Snapshots); n > 0 && ts.Snapshots[n-1].Taken.Unix() >= epoch {
		epoch = ts.Snapshots[n-1].Taken.Unix() + 1
	}
	slots := slotsOf(l.namer().named(ts))
	name := func(s slot) string {
		return fmt.Sprintf("%s/Snapshot/%s_%d.csv", ts.Name, s.name, epoch)
	}
	taken := l.State().Names()
	for slices.ContainsFunc(slots, func(s slot) bool { return taken[name(s)] }) {
		epoch++
	}
	snap := &Snapshot{Taken: time.Unix(epoch, 0).UTC(), Files: make([]File, len(slots))}
	// The copies share one sync of the Snapshot folder (store.Batch),
	// before the commit of the snapshot names them.
	b := store.NewBatch(l.st)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(snapshotCopies)
	for i, s := range slots {
		to := name(s)
		g.Go(func() error {
			f, err := l.concat(gctx, b, to, s.partition, s.files)
			f.Name, f.Written = s.name, now
			snap.Files[i] = f
			return err
		})
	}
	err := g.Wait()
	if err == nil {
		err = b.Sync(ctx)
	}
	if err != nil {
		// No object the state names has any of these names, so deleting
		// them all removes only copies this call made.
		for _, s := range slots {
			_ = l.st.Delete(context.WithoutCancel(ctx), name(s))
		}
		return nil, err
	}
	return snap, nil
}

// snapshotCopies is how many copies of one snapshot run at once: a copy
// costs a round trip on an object store and a folder sync on a local disk,
// and overlapping them hides most of that.
const snapshotCopies = 8

// copyBufs recycles the buffers copyInto copies objects through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBufSize is as large as a local.Store writer's buffer, so that each
// read is written straight to the file instead of through that buffer.
const copyBufSize = 1 << 20

func (l *csvFormat) copyInto(ctx context.Context, ow *objWriter, f File) error {
	r, err := l.st.Open(ctx, f.Path)
	if err != nil {
		return err
	}
	defer r.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	// Hiding r's WriteTo makes io.CopyBuffer use buf: a file's WriteTo
	// copies through 32 KiB, one read and one write call per 32 KiB, and
	// the store's writer buffers those again; whole-buffer reads and
	// writes halve the work of copying a table (merges).
	n, err := io.CopyBuffer(ow.w, struct{ io.Reader }{r}, *buf)
	if err != nil {
		return fmt.Errorf("copying %s: %w", f.Path, err)
	}
	ow.file.Rows += f.Rows
	ow.file.Bytes += n
	return nil
}

// snapshotWork is a snapshot waiting to be committed.
type snapshotWork struct {
	table      string
	generation int
	snap       *Snapshot
	keep       int
}

// Apply implements Work: the snapshot is appended; the oldest beyond
// SnapshotsToKeep become garbage.
func (w *snapshotWork) Apply(ts *TableState, _ time.Time) (*TableState, []string, bool) {
	if ts.Generation != w.generation {
		return nil, nil, false
	}
	nts := *ts
	nts.Snapshots = append(append([]Snapshot(nil), ts.Snapshots...), *w.snap)
	var garbage []string
	for len(nts.Snapshots) > w.keep {
		for _, f := range nts.Snapshots[0].Files {
			garbage = append(garbage, f.Path)
		}
		nts.Snapshots = nts.Snapshots[1:]
	}
	return &nts, garbage, true
}

func (w *snapshotWork) Table() string { return w.table }

func (w *snapshotWork) Written() []string {
	out := make([]string, len(w.snap.Files))
	for i, f := range w.snap.Files {
		out[i] = f.Path
	}
	return out
}
