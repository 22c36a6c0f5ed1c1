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
)

// Stage writes rows across several batches into objects no state names,
// for one later commit (TableTx.Stage) to name. Three kinds:
//
//   - Stage, the initial copy of a table: a copy committed batch by batch
//     writes one small file per batch (10 000 rows) and a commit record per
//     batch that lists them all; staged, a copy writes files of up to
//     MaxFileRows rows, and a commit every few of them. The engine commits
//     it every few seconds (sync.copyCommitEvery), when Full and at the end
//     of the copy.
//   - StageTx, the changes of one source transaction too large for a batch:
//     written part by part as they arrive (bounded memory), made visible by
//     the one commit at the transaction's end (issue #15, case 10).
//   - StageReplace, a fresh copy of a table built beside its committed data,
//     which readers keep seeing until the one commit that swaps the copy in
//     (TableTx.Reset with the stage; issue #15, case 3).
//
// A file that is full is published (flushed, synced, renamed) in the
// background while the rows go on into the next one, so that the writer
// never waits for a file to reach the disk. The last two kinds never ask
// for a commit: when too many partitions are open they publish them.
//
// Invariants:
//   - every row added is in exactly one file of the stage, open, being
//     published or published, in the order added;
//   - nothing a stage wrote is named by the lake until the commit that
//     carries it, so a crash leaves only orphans (removed by Open) and the
//     writer resumes from the cursor of the last commit;
//   - a stage belongs to one generation of its table in one phase (and, for
//     StageReplace, to the next generation, whose layout it was begun
//     with): a commit of it after a reset or a phase change is refused;
//   - a commit that fails before its record is written leaves the stage as
//     it was, to be committed again (a retry without another table) or
//     aborted; once a record naming it may have landed, Abort deletes
//     nothing.
type Stage struct {
	l  *Lake
	ts *TableState
	// baseCols is the table's layout when the stage began; Define evolves
	// ts's, which the commit then adopts.
	baseCols []Column
	evolved  bool
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
	// truncated: an in-place table's rows were truncated in the stage
	// (source.Change.Truncate); its commit empties the table first.
	truncated bool
	// finished: the files are closed (finish ran), files and ferr hold
	// its outcome; spent: committed (or possibly so) or aborted.
	finished, spent bool
	files           []File
	ferr            error
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
	return l.newStage(ts, false), nil
}

// StageTx starts a stage for the changes of one source transaction of
// table name, which must be in the lake with its initial copy done.
func (l *Lake) StageTx(name string) (*Stage, error) {
	ts := l.State().Tables[name]
	if ts == nil || ts.Phase != Completed {
		return nil, fmt.Errorf("stage: table %s does not stream changes (it is not in the lake, or its initial copy is not done)", name)
	}
	return l.newStage(ts, true), nil
}

// StageReplace starts a stage for a fresh copy of table name under d, to be
// committed with TableTx{Reset, Define: d, Stage}: the commit drops the
// table's data and names the stage's files at once, so readers see the old
// data until then and the new data from then on, never an empty or partial
// table.
func (l *Lake) StageReplace(name string, d Definition) (*Stage, error) {
	cur := l.State().Tables[name]
	if cur == nil {
		return nil, fmt.Errorf("stage: table %s is not in the lake: copy it as a new table", name)
	}
	if d.Source == nil || d.Source.Name != name {
		return nil, fmt.Errorf("stage: table %s: a replacement needs the table's own description", name)
	}
	cols, err := newLayout(d.Source)
	if err != nil {
		return nil, err
	}
	ts := &TableState{Name: name, Options: effectiveOptions(&d, l.opts.Incremental.Enabled), Source: d.Source, Columns: cols, Phase: InProgress, Generation: cur.Generation + 1}
	return l.newStage(ts, true), nil
}

func (l *Lake) newStage(ts *TableState, bounded bool) *Stage {
	return &Stage{l: l, ts: ts, baseCols: ts.Columns, bounded: bounded, open: map[string]*objWriter{}}
}

// Define evolves the layout of the stage's rows to come, for a schema
// change in the middle of a source transaction (StageTx): rows staged so far
// keep the layout they were written with (files of their own), the commit
// adopts the evolved layout. A description equal to the current one is a
// no-op; one the layout cannot follow in place is a *LayoutError.
func (s *Stage) Define(d Definition) error {
	if s.finished || s.spent {
		return errors.New("stage: already committed or aborted")
	}
	if d.Source == nil || d.Source.Name != s.ts.Name {
		return fmt.Errorf("stage: table %s: Define needs the table's own description", s.ts.Name)
	}
	if sameSource(s.ts.Source, d.Source) {
		return nil
	}
	if opts := effectiveOptions(&d, s.l.opts.Incremental.Enabled); opts != s.ts.Options {
		return &LayoutError{Table: s.ts.Name, Problem: fmt.Sprintf("the options changed from %+v to %+v", s.ts.Options, opts)}
	}
	cols, err := evolveLayout(s.ts.Columns, s.ts.Source, d.Source)
	if err != nil {
		return err
	}
	s.publishAll()
	ts := *s.ts
	ts.Columns, ts.Source = cols, d.Source
	s.ts, s.evolved = &ts, true
	return nil
}

// Add writes changes into the stage's files. A truncate among them
// applies as in a commit (truncate.go): in an in-place table it discards
// what the stage holds and makes its commit empty the table first; in an
// append-only one it adds the deletes of the records live at its place. On
// an error the stage is spent: Abort it.
func (s *Stage) Add(ctx context.Context, changes []source.Change) error {
	if s.finished || s.spent {
		return errors.New("stage: already committed or aborted")
	}
	if hasTruncate(changes) {
		var err error
		if changes, err = s.truncate(ctx, changes); err != nil {
			return err
		}
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

// truncate applies the truncates of changes (see Add) and returns the
// changes left to add.
func (s *Stage) truncate(ctx context.Context, changes []source.Change) ([]source.Change, error) {
	if !s.ts.Options.AppendOnly {
		last := -1
		for i, c := range changes {
			if c.Truncate {
				last = i
			}
		}
		s.discard()
		s.truncated = true
		return changes[last+1:], nil
	}
	// The records live at the first truncate are the table's committed
	// ones and the stage's so far, the changes before it included.
	first := slices.IndexFunc(changes, func(c source.Change) bool { return c.Truncate })
	if first > 0 {
		if err := s.Add(ctx, changes[:first]); err != nil {
			return nil, err
		}
	}
	s.publishAll()
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

// discard deletes every row the stage holds; it stays open for more.
func (s *Stage) discard() {
	for p, ow := range s.open {
		_ = ow.w.Abort()
		delete(s.open, p)
	}
	for _, pub := range s.closing {
		<-pub.done
	}
	s.l.deleteQuietly(context.Background(), s.written)
	s.closing, s.changes, s.written, s.rows = nil, nil, nil, 0
}

// published waits for the files being published and returns them, in the
// order they were closed.
func (s *Stage) published() ([]File, error) {
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
func (s *Stage) write(ctx context.Context, p string, pb *partBuf, now time.Time) error {
	start, first := 0, 0
	for first < len(pb.ends) {
		ow := s.open[p]
		if ow == nil {
			if s.bounded && len(s.open) >= stageOpenFiles {
				// No commit comes before the stage's end: the open
				// files are published instead.
				s.publishAll()
			}
			var err error
			ow, err = s.l.createObject(ctx, s.l.partitionName(s.l.tableDir(s.ts.Name, now), s.ts, p), p, now)
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

// publishAll closes every open file in the background.
func (s *Stage) publishAll() {
	for _, p := range slices.Sorted(maps.Keys(s.open)) {
		s.publish(p)
	}
}

// Full reports whether the stage needs a commit now: it keeps many
// partitions open. Full files need none: they are published in the
// background, and a commit would close the next file, just begun. A stage
// of a transaction or a replacement is never Full.
func (s *Stage) Full() bool { return s.crowded }

// finish closes the open files, waits for the files being published and
// returns every file of the stage; no row can be added after it. A second
// call returns the same (a commit retried without another table).
func (s *Stage) finish() ([]File, error) {
	if s.spent {
		return nil, errors.New("stage: already committed or aborted")
	}
	if s.finished {
		return s.files, s.ferr
	}
	s.finished = true
	s.publishAll()
	files, err := s.published()
	if s.ferr = err; s.ferr == nil {
		s.files = files
	}
	return s.files, s.ferr
}

// Abort discards the stage and deletes what it wrote, unless a commit
// record naming it may have landed (then the lake owns its files: a
// record that did not land leaves them to the orphan clean-up).
func (s *Stage) Abort() {
	if s.spent {
		return
	}
	s.spent = true
	s.discard()
}

// applyStage adds the files of stage st to ts, the table's new state in a
// commit w collects, first emptying it when the stage holds a truncate.
// The stage's objects stay the stage's until the record is written (Commit
// then calls spend).
func (l *Lake) applyStage(ts *TableState, st *Stage, now time.Time, w *commitWork) error {
	if st.l != l {
		return fmt.Errorf("commit: table %s: the stage belongs to another lake", ts.Name)
	}
	if st.spent {
		return fmt.Errorf("commit: table %s: the stage was already committed or aborted", ts.Name)
	}
	if st.ts.Name != ts.Name || st.ts.Generation != ts.Generation || ts.Phase != st.ts.Phase || ts.Options != st.ts.Options {
		st.Abort()
		return fmt.Errorf("commit: table %s: the stage was begun for generation %d of the table in phase %s with options %+v; the table is now generation %d in phase %s with options %+v: write it again", ts.Name, st.ts.Generation, st.ts.Phase, st.ts.Options, ts.Generation, ts.Phase, ts.Options)
	}
	if !slices.Equal(ts.Columns, st.baseCols) {
		st.Abort()
		return fmt.Errorf("commit: table %s: the table's layout changed while the stage was written: write it again", ts.Name)
	}
	files, err := st.finish()
	if err != nil {
		return err
	}
	if st.truncated {
		truncateData(ts, now, w)
	}
	if st.evolved {
		if !sameSource(ts.Source, st.ts.Source) {
			ts.Described = now
		}
		ts.Columns, ts.Source = st.ts.Columns, st.ts.Source
	}
	ts.Files = append(append([]File(nil), ts.Files...), files...)
	if len(st.changes) > 0 {
		ts.Changes = append(append([]File(nil), ts.Changes...), st.changes...)
	}
	ts.Rows += st.rows
	return nil
}
