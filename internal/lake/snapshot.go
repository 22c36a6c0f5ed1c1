package lake

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// snapshotDue reports whether Maintain should take a snapshot of ts: once
// the initial copy is complete, then every SnapshotInterval when the data
// changed since the last one.
func (l *Lake) snapshotDue(ts *TableState, now time.Time) bool {
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

// takeSnapshot copies the partition files of ts into one file per
// partition:
//
//	<table>/Snapshot/<partition>_<unix-epoch>.csv
//
// The epoch is the first second from now (and after the previous snapshot)
// at which no name is taken by an object the state names, garbage waiting
// for deletion included: a table reset or dropped and defined again within
// a second must not reuse the name of a snapshot its garbage will delete.
// Files are copied byte for byte, streaming.
func (l *Lake) takeSnapshot(ctx context.Context, ts *TableState, now time.Time) (*Snapshot, error) {
	epoch := now.Unix()
	if n := len(ts.Snapshots); n > 0 && ts.Snapshots[n-1].Taken.Unix() >= epoch {
		epoch = ts.Snapshots[n-1].Taken.Unix() + 1
	}
	byPart := map[string][]File{}
	for _, f := range ts.Files {
		byPart[f.Partition] = append(byPart[f.Partition], f)
	}
	parts := make([]string, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	taken := named(l.State())
	name := func(p string) string { return fmt.Sprintf("%s/Snapshot/%s_%d.csv", ts.Name, p, epoch) }
	for free := false; !free; {
		free = true
		for _, p := range parts {
			if taken[name(p)] {
				free = false
				epoch++
				break
			}
		}
	}
	snap := &Snapshot{Taken: time.Unix(epoch, 0).UTC()}
	fail := func(err error) (*Snapshot, error) {
		for _, f := range snap.Files {
			_ = l.st.Delete(context.WithoutCancel(ctx), f.Path)
		}
		return nil, err
	}
	for _, p := range parts {
		name := name(p)
		ow, err := l.createObject(ctx, name, p, now)
		if err != nil {
			return fail(err)
		}
		for _, f := range byPart[p] {
			if err := l.copyInto(ctx, ow, f); err != nil {
				_ = ow.w.Abort()
				return fail(fmt.Errorf("table %s: snapshot %s: %w", ts.Name, name, err))
			}
		}
		f, err := ow.close()
		if err != nil {
			return fail(err)
		}
		snap.Files = append(snap.Files, f)
	}
	return snap, nil
}

// copyBufs recycles the buffers copyInto copies objects through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBufSize is as large as a store.Local writer's buffer, so that each
// read is written straight to the file instead of through that buffer.
const copyBufSize = 1 << 20

func (l *Lake) copyInto(ctx context.Context, ow *objWriter, f File) error {
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
	// writes halve the work of copying a table (snapshots, merges).
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

// apply implements work: the snapshot is appended; the oldest beyond
// SnapshotsToKeep become garbage.
func (w *snapshotWork) apply(ts *TableState, _ time.Time) (*TableState, []string, bool) {
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

func (w *snapshotWork) tableName() string { return w.table }

func (w *snapshotWork) written() []string {
	out := make([]string, len(w.snap.Files))
	for i, f := range w.snap.Files {
		out[i] = f.Path
	}
	return out
}
