package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// objWriter streams rows into one new object.
type objWriter struct {
	w    store.Writer
	file File
}

func (l *Lake) createObject(ctx context.Context, name, partition string, now time.Time) (*objWriter, error) {
	w, err := l.st.Create(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", name, err)
	}
	return &objWriter{w: w, file: File{Path: name, Partition: partition, Written: now}}, nil
}

func (o *objWriter) row(line []byte) error {
	n, err := o.w.Write(line)
	if err == nil {
		_, err = o.w.Write([]byte{'\n'})
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.file.Path, err)
	}
	o.file.Rows++
	o.file.Bytes += int64(n) + 1
	return nil
}

func (o *objWriter) close() (File, error) {
	if err := o.w.Close(); err != nil {
		return File{}, fmt.Errorf("publishing %s: %w", o.file.Path, err)
	}
	return o.file, nil
}

// layoutIndexes are the positions compaction needs; system columns never
// move, since a layout only grows.
type layoutIndexes struct {
	version, isDelete, partCol int
}

func indexesOf(ts *TableState) layoutIndexes {
	ix := layoutIndexes{partCol: -1}
	for i, c := range ts.Columns {
		switch {
		case c.System && c.Name == colVersion:
			ix.version = i
		case c.System && c.Name == colIsDelete:
			ix.isDelete = i
		case ts.Source != nil && c.Name == ts.Source.PartitionColumn && !c.System:
			ix.partCol = i
		}
	}
	return ix
}

// scanFile calls fn with every record of one committed object.
func (l *Lake) scanFile(ctx context.Context, table, path string, ix layoutIndexes, fn func(line []byte, fields []string, version int64) error) error {
	r, err := l.st.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("table %s: reading %s: %w", table, path, err)
	}
	defer r.Close()
	rr := newRecordReader(r)
	for {
		line, fields, err := rr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("table %s: %s: %w", table, path, err)
		}
		if len(fields) <= ix.isDelete {
			return fmt.Errorf("table %s: %s, record %d: %d fields, fewer than the system columns need: %w", table, path, rr.n, len(fields), errBadRecord)
		}
		v, err := strconv.ParseInt(fields[ix.version], 10, 64)
		if err != nil {
			return fmt.Errorf("table %s: %s, record %d: versionnumber %q: %w", table, path, rr.n, fields[ix.version], errBadRecord)
		}
		if err := fn(line, fields, v); err != nil {
			return err
		}
	}
}

// pending is the winning change of one Id among the folded change files.
type pending struct {
	// line is the row as written; id and part are taken from it once, so
	// that its split fields need not be kept (compaction holds up to
	// 2*CompactRows pending rows).
	line    []byte
	id      string
	part    string
	version int64
	deleted bool
	// superseded: the partition files hold this version or a newer one.
	superseded bool
	// home is the file the Id lives in (its new version replaces the old
	// row there, keeping the row's SinkCreatedOn); -1 for a new Id.
	home       int
	sinkCreate string
	emitted    bool
}

// compaction is prepared work, committed by swap.
type compaction struct {
	table      string
	generation int
	folded     []string
	removed    []string
	added      []File
	// change replaces the folded change files, in their place (they are
	// the oldest), when change files are merged rather than folded.
	change *File
}

// compact folds the oldest change files of an in-place table into its
// partition files. Only files that hold a changed Id are rewritten (plus,
// for new Ids, one small file of their partition); the rest are read once,
// streaming, to find the changed Ids (an Id's partition is not known from a
// delete, which carries no values). Memory holds the folded changes only:
// at most about 2*CompactRows rows, unless one change file is bigger.
func (l *Lake) compact(ctx context.Context, ts *TableState, all bool) (*compaction, error) {
	now := l.opts.Now().UTC()
	ix := indexesOf(ts)
	c := &compaction{table: ts.Name, generation: ts.Generation}
	byID := map[string]*pending{}
	// partitionOf is where a new Id goes: by its partition column, else by
	// the time of the compaction.
	partitionOf := func(fields []string) string {
		if ix.partCol >= 0 && ix.partCol < len(fields) {
			if v, err := decodeValue(ts.Columns[ix.partCol].Type, fields[ix.partCol]); err == nil && v != nil {
				if tm, ok := v.(time.Time); ok {
					return tm.UTC().Format(partitionLayout(ts.Options.Granularity))
				}
			}
		}
		return now.Format(partitionLayout(ts.Options.Granularity))
	}
	var rows int
	for _, f := range ts.Changes {
		if !all && rows >= 2*l.opts.CompactRows && len(c.folded) > 0 {
			break
		}
		err := l.scanFile(ctx, ts.Name, f.Path, ix, func(line []byte, fields []string, v int64) error {
			p := byID[fields[idxID]]
			if p != nil && p.version > v {
				return nil
			}
			// The fields share one string with the whole line: clone the Id
			// so that the pending row holds only its own copy of the line.
			id := strings.Clone(fields[idxID])
			byID[id] = &pending{line: append([]byte(nil), line...), id: id, part: partitionOf(fields), version: v, deleted: fields[ix.isDelete] == "True", home: -1}
			return nil
		})
		if err != nil {
			return nil, err
		}
		rows += int(f.Rows)
		c.folded = append(c.folded, f.Path)
	}
	// Pass 1: find the files holding changed Ids.
	rewrite := map[int]bool{}
	for i, f := range ts.Files {
		err := l.scanFile(ctx, ts.Name, f.Path, ix, func(_ []byte, fields []string, v int64) error {
			p := byID[fields[idxID]]
			if p == nil {
				return nil
			}
			if v >= p.version {
				p.superseded = true
				return nil
			}
			rewrite[i] = true
			if p.home < 0 {
				p.home, p.sinkCreate = i, fields[idxSinkCreated]
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// New Ids go to their partition: into its smallest file when that one
	// is small (it is rewritten anyway or cheap to rewrite), else a new one.
	fresh := map[string][]*pending{}
	for _, p := range byID {
		if p.superseded || p.deleted || p.home >= 0 {
			continue
		}
		fresh[p.part] = append(fresh[p.part], p)
	}
	target := map[int]string{}
	for part := range fresh {
		best := -1
		for i, f := range ts.Files {
			if f.Partition == part && f.Rows+int64(len(fresh[part])) <= int64(l.opts.MaxFileRows) && l.small(f) && (best < 0 || f.Rows < ts.Files[best].Rows) {
				best = i
			}
		}
		if best >= 0 {
			target[best] = part
			rewrite[best] = true
		}
	}
	// Pass 2: rewrite.
	cleanup := func(err error) (*compaction, error) {
		for _, f := range c.added {
			_ = l.st.Delete(context.WithoutCancel(ctx), f.Path)
		}
		return nil, err
	}
	idxs := make([]int, 0, len(rewrite))
	for i := range rewrite {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	for _, i := range idxs {
		old := ts.Files[i]
		ow, err := l.createObject(ctx, l.partitionName(ts.Name, ts, old.Partition), old.Partition, now)
		if err != nil {
			return cleanup(err)
		}
		err = l.scanFile(ctx, ts.Name, old.Path, ix, func(line []byte, fields []string, _ int64) error {
			p := byID[fields[idxID]]
			if p == nil || p.superseded {
				return ow.row(line)
			}
			if p.deleted || p.home != i || p.emitted {
				return nil
			}
			p.emitted = true
			row, err := withSinkCreated(p.line, p.sinkCreate)
			if err != nil {
				return err
			}
			return ow.row(row)
		})
		if err == nil && target[i] != "" {
			for _, p := range sortedPending(fresh[target[i]]) {
				if err = ow.row(p.line); err != nil {
					break
				}
			}
			delete(fresh, target[i])
		}
		if err != nil {
			_ = ow.w.Abort()
			return cleanup(err)
		}
		c.removed = append(c.removed, old.Path)
		if ow.file.Rows == 0 {
			_ = ow.w.Abort()
			continue
		}
		f, err := ow.close()
		if err != nil {
			return cleanup(err)
		}
		c.added = append(c.added, f)
	}
	parts := make([]string, 0, len(fresh))
	for part := range fresh {
		parts = append(parts, part)
	}
	sort.Strings(parts)
	for _, part := range parts {
		var ow *objWriter
		for _, p := range sortedPending(fresh[part]) {
			if ow != nil && (ow.file.Rows >= int64(l.opts.MaxFileRows) || ow.file.Bytes+int64(len(p.line)) > int64(maxFileBytes)) {
				f, err := ow.close()
				if err != nil {
					return cleanup(err)
				}
				c.added = append(c.added, f)
				ow = nil
			}
			if ow == nil {
				var err error
				if ow, err = l.createObject(ctx, l.partitionName(ts.Name, ts, part), part, now); err != nil {
					return cleanup(err)
				}
			}
			if err := ow.row(p.line); err != nil {
				_ = ow.w.Abort()
				return cleanup(err)
			}
		}
		f, err := ow.close()
		if err != nil {
			return cleanup(err)
		}
		c.added = append(c.added, f)
	}
	return c, nil
}

func partitionLayout(g Granularity) string {
	if g == Month {
		return "2006-01"
	}
	return "2006"
}

// sortedPending orders rows by Id so that output is deterministic.
func sortedPending(ps []*pending) []*pending {
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	return ps
}

// withSinkCreated returns line with its SinkCreatedOn replaced, so that a
// record keeps the time it first reached the lake.
func withSinkCreated(line []byte, sinkCreated string) ([]byte, error) {
	if sinkCreated == "" {
		return line, nil
	}
	fs, err := splitFields(nil, line)
	if err != nil {
		return nil, err
	}
	fs[idxSinkCreated] = sinkCreated
	return []byte(strings.Join(fs, ",")), nil
}

// apply implements work: the table's files without the rewritten and
// folded ones, plus the new ones. Change files and files that commits added
// meanwhile stay.
func (c *compaction) apply(ts *TableState, now time.Time) (*TableState, []string, bool) {
	if ts.Generation != c.generation {
		return nil, nil, false
	}
	removed := map[string]bool{}
	for _, p := range c.removed {
		removed[p] = true
	}
	for _, p := range c.folded {
		removed[p] = true
	}
	nts := *ts
	nts.Files = nil
	for _, f := range ts.Files {
		if !removed[f.Path] {
			nts.Files = append(nts.Files, f)
		}
	}
	nts.Files = append(nts.Files, c.added...)
	nts.Changes = nil
	if c.change != nil {
		nts.Changes = append(nts.Changes, *c.change)
	}
	for _, f := range ts.Changes {
		if !removed[f.Path] {
			nts.Changes = append(nts.Changes, f)
		}
	}
	if !nts.Options.AppendOnly {
		nts.Rows = 0
		for _, f := range nts.Files {
			nts.Rows += f.Rows
		}
	}
	return &nts, append(append([]string(nil), c.removed...), c.folded...), true
}

func (c *compaction) tableName() string { return c.table }

func (c *compaction) written() []string {
	out := make([]string, 0, len(c.added)+1)
	for _, f := range c.added {
		out = append(out, f.Path)
	}
	if c.change != nil {
		out = append(out, c.change.Path)
	}
	return out
}

// changeFilesToMerge is how many change files an in-place table may collect
// between compactions before Maintain concatenates them: many one-row
// commits would otherwise make every commit record list thousands of files.
const changeFilesToMerge = 32

// mergeChanges concatenates the pending change files of ts, in order, into
// one change file that takes their place. It reads only the change files,
// not the table, so it is cheap enough to run whenever they pile up; the
// merge-on-read outcome is unchanged since the order of rows is kept.
func (l *Lake) mergeChanges(ctx context.Context, ts *TableState) (*compaction, error) {
	now := l.opts.Now().UTC()
	ow, err := l.createObject(ctx, l.changeName(ts), "", now)
	if err != nil {
		return nil, err
	}
	c := &compaction{table: ts.Name, generation: ts.Generation}
	for _, f := range ts.Changes {
		if err := l.copyInto(ctx, ow, f); err != nil {
			_ = ow.w.Abort()
			return nil, fmt.Errorf("merging change files of table %s: %w", ts.Name, err)
		}
		c.folded = append(c.folded, f.Path)
	}
	f, err := ow.close()
	if err != nil {
		return nil, err
	}
	// The merged file is as old as its oldest change, for CompactAge.
	f.Written = ts.Changes[0].Written
	c.change = &f
	return c, nil
}

// smallFilesToMerge is how many small files a partition may collect before
// Maintain merges them.
const smallFilesToMerge = 8

// small reports whether f is a small file: under an eighth of both bounds.
func (l *Lake) small(f File) bool {
	return f.Rows < int64(l.opts.MaxFileRows/8) && f.Bytes < int64(maxFileBytes/8)
}

// copySmallDivisor replaces 8 in small for the files of an initial copy.
// The copy writes one file per source batch (10 000 rows by default), as
// many as the table's size over the batch size: merging those rewrites the
// whole table during the copy, a third write of it with the first
// snapshot, which cost a 1M-row Postgres copy 20% of its CPU and 30% of its
// time. Only files of tiny batches are merged.
const copySmallDivisor = 64

// crowdedFiles is the count of files of a partition at which the files of
// the initial copy are merged as any others: every commit record holds the
// table's file list, so unmerged files would make records grow with the
// table (a 5M-row copy has 500 files and 70 kB records).
const crowdedFiles = 512

// mergeable reports whether f, a partition file of ts, is small enough to
// merge: small, or for a file the initial copy wrote (before the commit
// that completed it) in a partition that is not crowded, under a
// sixty-fourth of both bounds.
func (l *Lake) mergeable(ts *TableState, f File, crowded bool) bool {
	if !crowded && (ts.InitialSyncCompleted.IsZero() || !f.Written.After(ts.InitialSyncCompleted)) {
		return f.Rows < int64(l.opts.MaxFileRows/copySmallDivisor) && f.Bytes < int64(maxFileBytes/copySmallDivisor)
	}
	return l.small(f)
}

// mergeSmallFiles concatenates the mergeable files of each partition that
// has collected smallFilesToMerge of them into files of at most MaxFileRows
// rows: append-only tables get a new file per commit, and an initial copy
// one per batch. Rows are copied byte for byte, in order.
func (l *Lake) mergeSmallFiles(ctx context.Context, ts *TableState) (*compaction, error) {
	name := ts.Name
	files := map[string]int{}
	for _, f := range ts.Files {
		files[f.Partition]++
	}
	byPart := map[string][]File{}
	for _, f := range ts.Files {
		if l.mergeable(ts, f, files[f.Partition] >= crowdedFiles) {
			byPart[f.Partition] = append(byPart[f.Partition], f)
		}
	}
	parts := make([]string, 0, len(byPart))
	for p, fs := range byPart {
		if len(fs) >= smallFilesToMerge {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	sort.Strings(parts)
	now := l.opts.Now().UTC()
	c := &compaction{table: name, generation: ts.Generation}
	fail := func(err error) (*compaction, error) {
		for _, f := range c.added {
			_ = l.st.Delete(context.WithoutCancel(ctx), f.Path)
		}
		return nil, fmt.Errorf("merging small files of table %s: %w", name, err)
	}
	for _, p := range parts {
		var ow *objWriter
		for _, f := range byPart[p] {
			if ow != nil && (ow.file.Rows+f.Rows > int64(l.opts.MaxFileRows) || ow.file.Bytes+f.Bytes > int64(maxFileBytes)) {
				done, err := ow.close()
				if err != nil {
					return fail(err)
				}
				c.added = append(c.added, done)
				ow = nil
			}
			if ow == nil {
				var err error
				if ow, err = l.createObject(ctx, l.partitionName(ts.Name, ts, p), p, now); err != nil {
					return fail(err)
				}
			}
			if err := l.copyInto(ctx, ow, f); err != nil {
				_ = ow.w.Abort()
				return fail(err)
			}
			c.removed = append(c.removed, f.Path)
		}
		done, err := ow.close()
		if err != nil {
			return fail(err)
		}
		c.added = append(c.added, done)
	}
	return c, nil
}
