package lake

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// Stage writes the rows of an initial copy into open partition files across
// several batches, for one later commit (TableTx.Stage) to name. A copy
// committed batch by batch writes one small file per batch (10 000 rows)
// and a commit record per batch that lists them all; staged, a copy writes
// files of up to MaxFileRows rows, and a commit every few of them.
//
// A file that is full is published (flushed, synced, renamed) in the
// background while the copy goes on into the next one, so that the copy
// never waits for a file to reach the disk; the engine commits a stage
// every few seconds (sync.copyCommitEvery) and at the end of the copy.
//
// Invariants:
//   - every row added is in exactly one file of the stage, open, being
//     published or published, in the order added;
//   - nothing a stage wrote is named by the lake until the commit that
//     carries it, so a crash leaves only orphans (removed by Open) and the
//     copy resumes from the cursor of the last commit;
//   - a stage belongs to one generation of its table, in phase InProgress:
//     a commit of it after a reset or the end of the copy is refused.
type Stage struct {
	l       *Lake
	ts      *TableState
	open    map[string]*objWriter
	closing []*publishing
	changes []File
	rows    int64
	written []string
	// maxRows and maxBytes are the largest rows of one partition one Add
	// brought: a file that could not take as many again is full.
	maxRows, maxBytes int64
	crowded, done     bool
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

// Stage starts a stage for the initial copy of table name, which must be
// in the lake and in phase InProgress.
func (l *Lake) Stage(name string) (*Stage, error) {
	ts := l.State().Tables[name]
	if ts == nil || ts.Phase != InProgress {
		return nil, fmt.Errorf("stage: table %s is not being copied (it is not in the lake, or its initial copy is over)", name)
	}
	return &Stage{l: l, ts: ts, open: map[string]*objWriter{}}, nil
}

// Add writes changes into the stage's files. On an error the stage is
// spent: Abort it.
func (s *Stage) Add(ctx context.Context, changes []source.Change) error {
	if s.done {
		return errors.New("stage: already committed or aborted")
	}
	now := s.l.opts.Now().UTC()
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
		var w commitWork
		f, err := s.l.writeObject(ctx, s.l.changeName(s.ts), enc.change.data, int64(rows), now, &w)
		s.written = append(s.written, w.written...)
		if err != nil {
			return err
		}
		s.changes = append(s.changes, f)
	}
	s.rows += rowsAdded(s.ts, enc, len(changes))
	return nil
}

// write appends the rows of pb to partition p's open file, closing it and
// opening the next whenever it reaches MaxFileRows rows or maxFileBytes.
func (s *Stage) write(ctx context.Context, p string, pb *partBuf, now time.Time) error {
	start, first := 0, 0
	for first < len(pb.ends) {
		ow := s.open[p]
		if ow == nil {
			var err error
			ow, err = s.l.createObject(ctx, s.l.partitionName(s.l.tableDir(s.ts.Name, now), s.ts, p), p, now)
			if err != nil {
				return err
			}
			s.written = append(s.written, ow.file.Path)
			s.open[p] = ow
			if len(s.open) >= stageOpenFiles {
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
func (s *Stage) publish(p string) {
	ow := s.open[p]
	delete(s.open, p)
	pub := &publishing{done: make(chan struct{})}
	go func() {
		defer close(pub.done)
		pub.file, pub.err = ow.close()
	}()
	s.closing = append(s.closing, pub)
}

// Full reports whether the stage needs a commit now: it keeps many
// partitions open. Full files need none: they are published in the
// background, and a commit would close the next file, just begun.
func (s *Stage) Full() bool { return s.crowded }

// finish closes the open files, waits for the files being published and
// returns every file of the stage; the stage is spent.
func (s *Stage) finish() ([]File, error) {
	if s.done {
		return nil, errors.New("stage: already committed or aborted")
	}
	s.done = true
	parts := make([]string, 0, len(s.open))
	for p := range s.open {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	for _, p := range parts {
		s.publish(p)
	}
	files := make([]File, 0, len(s.closing))
	var errs []error
	for _, pub := range s.closing {
		<-pub.done
		files = append(files, pub.file)
		errs = append(errs, pub.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return files, nil
}

// Abort discards the stage and deletes what it wrote.
func (s *Stage) Abort() {
	s.done = true
	for p, ow := range s.open {
		_ = ow.w.Abort()
		delete(s.open, p)
	}
	for _, pub := range s.closing {
		<-pub.done
	}
	s.l.deleteQuietly(context.Background(), s.written)
}

// applyStage adds the files of stage st to ts, the table's new state in a
// commit; w learns what to delete should the commit fail.
func (l *Lake) applyStage(ts *TableState, st *Stage, w *commitWork) error {
	if st.l != l {
		return fmt.Errorf("commit: table %s: the stage belongs to another lake", ts.Name)
	}
	if st.ts.Name != ts.Name || st.ts.Generation != ts.Generation || ts.Phase != InProgress {
		st.Abort()
		return fmt.Errorf("commit: table %s: the stage was begun for generation %d of the table during its initial copy; the table is now generation %d in phase %s: copy again", ts.Name, st.ts.Generation, ts.Generation, ts.Phase)
	}
	files, err := st.finish()
	w.written = append(w.written, st.written...)
	if err != nil {
		return err
	}
	ts.Files = append(append([]File(nil), ts.Files...), files...)
	if len(st.changes) > 0 {
		ts.Changes = append(append([]File(nil), ts.Changes...), st.changes...)
	}
	ts.Rows += st.rows
	return nil
}
