package lake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// csvStage is the Synapse format's StageWriter: rows go into open partition
// files as they arrive; a file about to reach MaxFileRows (or maxFileBytes)
// is published (flushed, synced, renamed) in the background while the rows
// go on into the next one, so that the writer never waits for a file to
// reach the disk. A bounded stage publishes its open files when too many
// partitions are open instead of asking for a commit.
//
// Invariant: every row added is in exactly one file of the stage, open,
// being published or published, in the order added.
type csvStage struct {
	l *csvFormat
	// st writes the stage's objects: a batch of the lake's store, synced
	// by Finish, before the commit that names them.
	st store.Batch
	ts *TableState
	// bounded stages never need a commit (StageTx, StageReplace).
	bounded bool
	open    map[string]*objWriter
	closing []*publishing
	changes []File
	rows    int64
	written []string
	// maxRows and maxBytes are the largest rows of one partition one Add
	// brought: a file that could not take as many again is full.
	maxRows, maxBytes int64
	crowded           bool
	// files are the partition files, once Finish succeeded.
	files []File
	// moved are the files of files copied into a newer incremental folder
	// (Apply), no longer among files.
	moved []string
}

// Stage implements Format.
func (l *csvFormat) Stage(ts *TableState, bounded bool) StageWriter {
	return &csvStage{l: l, st: store.NewBatch(l.st), ts: ts, bounded: bounded, open: map[string]*objWriter{}}
}

// publishing is a full file being published in the background.
type publishing struct {
	done chan struct{}
	file File
	err  error
}

// stageOpenFiles bounds the partitions a stage keeps open at once (each
// holds a store writer's buffer): past it, Full asks for a commit.
const stageOpenFiles = 8

// Add implements StageWriter: changes go into the stage's files under the
// layout of ts. A truncate (append-only tables only) adds the deletes of
// the records live at its place (write.go).
func (s *csvStage) Add(ctx context.Context, ts *TableState, changes []source.Change) error {
	s.ts = ts
	if slices.ContainsFunc(changes, func(c source.Change) bool { return c.Truncate }) {
		var err error
		if changes, err = s.truncate(ctx, changes); err != nil {
			return err
		}
	}
	now := s.l.now().UTC()
	enc, err := encodeChanges(s.ts, changes, now)
	defer enc.recycle()
	if err != nil {
		return err
	}
	parts := make([]string, 0, len(enc.parts))
	for p := range enc.parts {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	for _, p := range parts {
		pb := enc.parts[p]
		if err := s.write(ctx, p, pb, now); err != nil {
			return err
		}
		// A file that could not take another batch like the largest so
		// far is published now: rows past its bound would start a new
		// file that the next commit closes nearly empty.
		s.maxRows, s.maxBytes = max(s.maxRows, int64(len(pb.ends))), max(s.maxBytes, int64(len(pb.data)))
		if ow := s.open[p]; ow != nil && (ow.file.Rows+s.maxRows > int64(s.l.opts.MaxFileRows) || ow.file.Bytes+s.maxBytes > int64(maxFileBytes)) {
			s.publish(p)
		}
	}
	if rows := len(enc.change.ends); rows > 0 {
		f, err := writeObject(ctx, s.st, s.l.changeName(s.ts), enc.change.data, int64(rows), now, &s.written)
		if err != nil {
			return err
		}
		s.changes = append(s.changes, f)
	}
	s.rows += rowsAdded(s.ts, enc, len(changes))
	return nil
}

// truncate replaces the truncates of changes, of an append-only table, by
// the deletes of the records live at their place (see Add): the table's
// committed ones and the stage's so far, the changes before it included.
func (s *csvStage) truncate(ctx context.Context, changes []source.Change) ([]source.Change, error) {
	first := slices.IndexFunc(changes, func(c source.Change) bool { return c.Truncate })
	if first > 0 {
		if err := s.Add(ctx, s.ts, changes[:first]); err != nil {
			return nil, err
		}
	}
	s.Flush()
	staged, err := s.published()
	if err != nil {
		return nil, err
	}
	live, err := s.l.liveRecords(ctx, s.ts, slices.Concat(s.ts.Files, staged))
	if err != nil {
		return nil, err
	}
	return live.expand(s.ts.Name, changes[first:]), nil
}

// Discard implements StageWriter: it deletes every row the stage holds; it
// stays open for more.
func (s *csvStage) Discard() {
	for p, ow := range s.open {
		_ = ow.w.Abort()
		delete(s.open, p)
	}
	for _, pub := range s.closing {
		<-pub.done
	}
	s.l.o.Discard(context.Background(), s.written)
	s.closing, s.changes, s.written, s.moved, s.rows = nil, nil, nil, nil, 0
}

// published waits for the files being published and returns them, in the
// order they were closed.
func (s *csvStage) published() ([]File, error) {
	files := make([]File, 0, len(s.closing))
	var errs []error
	for _, pub := range s.closing {
		<-pub.done
		files = append(files, pub.file)
		errs = append(errs, pub.err)
	}
	return files, errors.Join(errs...)
}

// write appends the rows of pb to partition p's open file, closing it and
// opening the next whenever it reaches MaxFileRows rows or maxFileBytes.
func (s *csvStage) write(ctx context.Context, p string, pb *partBuf, now time.Time) error {
	start, first := 0, 0
	for first < len(pb.ends) {
		ow := s.open[p]
		if ow == nil {
			if s.bounded && len(s.open) >= stageOpenFiles {
				// No commit comes before the stage's end: the open
				// files are published instead.
				s.Flush()
			}
			var err error
			ow, err = createObject(ctx, s.st, s.l.partitionName(s.l.tableDir(s.ts.Name, now), s.ts, p), p, now)
			if err != nil {
				return err
			}
			s.written = append(s.written, ow.file.Path)
			s.open[p] = ow
			if !s.bounded && len(s.open) >= stageOpenFiles {
				s.crowded = true
			}
		}
		// The run of rows that fits: at least one, so that a row larger
		// than the byte bound still gets a file of its own.
		n := 0
		for first+n < len(pb.ends) && ow.file.Rows+int64(n) < int64(s.l.opts.MaxFileRows) &&
			(n == 0 && ow.file.Rows == 0 || ow.file.Bytes+int64(pb.ends[first+n]-start) <= int64(maxFileBytes)) {
			n++
		}
		if n > 0 {
			end := pb.ends[first+n-1]
			if _, err := ow.w.Write(pb.data[start:end]); err != nil {
				return fmt.Errorf("writing %s: %w", ow.file.Path, err)
			}
			ow.file.Rows += int64(n)
			ow.file.Bytes += int64(end - start)
			start, first = end, first+n
		}
		if first < len(pb.ends) || ow.file.Rows >= int64(s.l.opts.MaxFileRows) {
			s.publish(p)
		}
	}
	return nil
}

// publish closes partition p's open file in the background.
func (s *csvStage) publish(p string) {
	ow := s.open[p]
	delete(s.open, p)
	pub := &publishing{done: make(chan struct{})}
	go func() {
		defer close(pub.done)
		pub.file, pub.err = ow.close()
	}()
	s.closing = append(s.closing, pub)
}

// Flush implements StageWriter: it closes every open file in the
// background.
func (s *csvStage) Flush() {
	for _, p := range slices.Sorted(maps.Keys(s.open)) {
		s.publish(p)
	}
}

// Full implements StageWriter: the stage keeps many partitions open. Full
// files need no commit: they are published in the background, and a
// commit would close the next file, just begun. A bounded stage is never
// Full.
func (s *csvStage) Full() bool { return s.crowded }

// Finish implements StageWriter: it closes the open files, waits for the
// files being published and syncs their folders, once each: the commit
// that follows names them.
func (s *csvStage) Finish() error {
	s.Flush()
	files, err := s.published()
	if err != nil {
		return err
	}
	if err := s.st.Sync(context.Background()); err != nil {
		return fmt.Errorf("table %s: %w", s.ts.Name, err)
	}
	s.files = files
	return nil
}

// Apply implements StageWriter: the stage's partition files join the
// table's, named (publish.go), and its change files the table's. In
// incremental-update folder mode a file the stage wrote in the folder of an
// interval older than the commit's (a transaction staged across a
// boundary) is copied into the commit's folder first: the older folder may
// already be finished, its manifests and files written once, and a
// consumer reads each folder once, so a row left there would never reach
// it. The copy (store.Copy, server-side) takes the file's place in the
// stage, and the file becomes the commit's garbage.
func (s *csvStage) Apply(ctx context.Context, ts *TableState, now time.Time) ([]string, error) {
	if s.l.opts.Incremental.Enabled {
		if err := s.moveToFolder(ctx, ts, now); err != nil {
			return nil, err
		}
	}
	ts.Files = append(append([]File(nil), ts.Files...), s.files...)
	if len(s.changes) > 0 {
		ts.Changes = append(append([]File(nil), ts.Changes...), s.changes...)
	}
	ts.Rows += s.rows
	s.l.namer().name(ts)
	return slices.Clone(s.moved), nil
}

// moveToFolder copies the stage's files of folders older than the one of
// a commit at now into it (see Apply). Copied files stay in s.moved, the
// garbage of every later Apply of the stage: a commit that failed dropped
// the garbage of its record, the retry names it again.
func (s *csvStage) moveToFolder(ctx context.Context, ts *TableState, now time.Time) error {
	folder := s.l.folderOf(now)
	for i, f := range s.files {
		fo := folderOfPath(f.Path)
		if fo == "" || fo >= folder {
			continue
		}
		to := s.l.partitionName(s.l.tableDir(ts.Name, now), ts, f.Partition)
		if err := s.l.st.Copy(ctx, f.Path, to); err != nil {
			return fmt.Errorf("copying %s, staged in incremental folder %s, into the commit's folder %s as %s: %w", f.Path, fo, folder, to, err)
		}
		s.written = append(s.written, to)
		s.moved = append(s.moved, f.Path)
		s.files[i].Path = to
	}
	return nil
}
