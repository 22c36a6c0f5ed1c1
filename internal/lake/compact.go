package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/store"
)

// objWriter streams rows into one new object.
type objWriter struct {
	w    store.Writer
	file File
}

// createObject starts object name in st: the lake's store, or a batch of it
// (store.Batch) that the caller syncs before a commit names the object.
func createObject(ctx context.Context, st store.Store, name, partition string, now time.Time) (*objWriter, error) {
	w, err := st.Create(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", name, err)
	}
	return &objWriter{w: w, file: File{Path: name, Partition: partition, Written: now}}, nil
}

// newline ends every row written; a variable, so that writing it does not
// allocate.
var newline = []byte{'\n'}

func (o *objWriter) row(line []byte) error {
	n, err := o.w.Write(line)
	if err == nil {
		_, err = o.w.Write(newline)
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

// rowKey is what compaction takes from a record: its Id (raw, as
// written), version and IsDelete.
type rowKey struct {
	id      []byte
	version int64
	deleted bool
}

// checkEvery is how many records a scan reads between two looks at its
// context, so that a failed worker stops the others soon.
const checkEvery = 1 << 14

// scanRecords calls fn with every record of one committed object. Every
// field of every record is walked, so that a malformed record fails the
// compaction instead of being copied into a new file; only the fields
// compaction needs are taken, without allocating.
func (l *csvFormat) scanRecords(ctx context.Context, table, path string, ix layoutIndexes, fn func(line []byte, r rowKey) error) error {
	r, err := l.st.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("table %s: reading %s: %w", table, path, err)
	}
	defer r.Close()
	rr := newRecordReader(r)
	defer rr.release()
	for {
		line, err := rr.nextLine()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("table %s: %s: %w", table, path, err)
		}
		if rr.n%checkEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var rec rowKey
		var version []byte
		sc := newFieldScanner(line)
		k := 0
		for ; sc.more(); k++ {
			start, end, err := sc.next()
			if err != nil {
				return fmt.Errorf("table %s: %s: record %d: %w", table, path, rr.n, err)
			}
			switch {
			case k == idxID:
				rec.id = line[start:end]
			case k == ix.version:
				version = line[start:end]
			case k == ix.isDelete:
				rec.deleted = string(line[start:end]) == "True"
			}
		}
		if k <= ix.isDelete {
			return fmt.Errorf("table %s: %s, record %d: %d fields, fewer than the system columns need: %w", table, path, rr.n, k, errBadRecord)
		}
		if rec.version, err = strconv.ParseInt(string(version), 10, 64); err != nil {
			return fmt.Errorf("table %s: %s, record %d: versionnumber %q: %w", table, path, rr.n, version, errBadRecord)
		}
		if err := fn(line, rec); err != nil {
			return err
		}
	}
}

// pending is the winning change of one Id among the folded change files.
// It holds no pointer (its row is in the fold's arena), so that the
// collector has nothing to scan in a million of them.
type pending struct {
	version int64
	line    lineRef
	// home is the first partition file (by index) holding an older
	// version of the Id: the new version replaces the old row there,
	// keeping the row's SinkCreatedOn; -1 for a new Id. Pass 1 lowers it
	// with atomic operations, from several workers.
	home int32
	// superseded, 1 when the partition files hold this version or a
	// newer one, so the change is dropped and they stay; pass 1 sets it
	// with atomic operations.
	superseded uint32
	deleted    bool
	// emitted: the row was written. Only the worker rewriting file home
	// reads or writes it.
	emitted bool
}

// lineRef locates a row in a lineArena.
type lineRef struct {
	chunk, off, n int32
}

// lineArena holds the rows of a fold back to back in large chunks: a
// million pending rows cost a few dozen allocations instead of a million,
// and no pointers for the collector. Chunks are never reallocated, so a
// lineRef stays valid.
type lineArena struct {
	chunks [][]byte
}

// arenaChunk is the size of a lineArena chunk; a longer row gets a chunk
// of its own.
const arenaChunk = 4 << 20

func (a *lineArena) add(line []byte) lineRef {
	last := len(a.chunks) - 1
	if last < 0 || cap(a.chunks[last])-len(a.chunks[last]) < len(line) {
		a.chunks = append(a.chunks, make([]byte, 0, max(arenaChunk, len(line))))
		last++
	}
	c := a.chunks[last]
	a.chunks[last] = append(c, line...)
	return lineRef{chunk: int32(last), off: int32(len(c)), n: int32(len(line))}
}

func (a *lineArena) bytes(r lineRef) []byte {
	return a.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

// idArena makes the fold's map keys: substrings of a few large
// strings.Builders, whose written bytes never change, instead of one
// allocation per Id.
type idArena struct {
	cur *strings.Builder
}

const idChunk = 1 << 20

func (a *idArena) add(id []byte) string {
	if a.cur == nil || a.cur.Cap()-a.cur.Len() < len(id) {
		a.cur = new(strings.Builder)
		a.cur.Grow(max(idChunk, len(id)))
	}
	start := a.cur.Len()
	a.cur.Write(id)
	return a.cur.String()[start:]
}

// fold is the winning change of every Id in the folded change files.
type fold struct {
	lines lineArena
	ids   idArena
	byID  map[string]int32
	rows  []pending
}

// errTooManyChanges: a fold indexes its rows with int32.
var errTooManyChanges = errors.New("more than 2^31 changes to fold at once")

// foldChanges reads the change files c.folded, in order: per Id, the
// highest version wins, the later file on a tie. Two goroutines share the
// work, in a pipeline that keeps the order: one reads and checks the
// records and copies them into the arena, the other indexes them.
func (l *csvFormat) foldChanges(ctx context.Context, ts *TableState, ix layoutIndexes, c *compaction, rows int64) (*fold, error) {
	if rows > math.MaxInt32 {
		return nil, fmt.Errorf("table %s: %d changes: %w; lower CompactRows", ts.Name, rows, errTooManyChanges)
	}
	// Sized for the rows of the files: no rehashing or copying while they
	// are read; fewer when Ids repeat.
	fd := &fold{byID: make(map[string]int32, rows), rows: make([]pending, 0, rows)}
	batches := make(chan []folded, 4)
	free := make(chan []folded, 8)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		batch := make([]folded, 0, foldBatch)
		for _, path := range c.folded {
			err := l.scanRecords(gctx, ts.Name, path, ix, func(line []byte, r rowKey) error {
				if len(line) > math.MaxInt32 {
					return fmt.Errorf("table %s: %s: a record of %d bytes: %w", ts.Name, path, len(line), errBadRecord)
				}
				ref := fd.lines.add(line)
				// The Id is the row's first field. The slice is of the
				// chunk, which the indexing goroutine may read, not of
				// the chunk list, which this one appends to.
				id := fd.lines.chunks[ref.chunk][ref.off : ref.off+int32(len(r.id))]
				batch = append(batch, folded{id: id, line: ref, version: r.version, deleted: r.deleted})
				if len(batch) < foldBatch {
					return nil
				}
				select {
				case batches <- batch:
				case <-gctx.Done():
					return gctx.Err()
				}
				select {
				case batch = <-free:
				default:
					batch = make([]folded, 0, foldBatch)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			select {
			case batches <- batch:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for batch := range batches {
			for _, r := range batch {
				k, ok := fd.byID[string(r.id)]
				if ok && fd.rows[k].version > r.version {
					continue
				}
				if ok {
					fd.rows[k] = pending{version: r.version, line: r.line, home: -1, deleted: r.deleted}
					continue
				}
				if len(fd.rows) == math.MaxInt32 {
					return fmt.Errorf("table %s: %w; lower CompactRows", ts.Name, errTooManyChanges)
				}
				fd.byID[fd.ids.add(r.id)] = int32(len(fd.rows))
				fd.rows = append(fd.rows, pending{version: r.version, line: r.line, home: -1, deleted: r.deleted})
			}
			select {
			case free <- batch[:0]:
			default:
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return fd, nil
}

// folded is a change record on its way to the fold's index.
type folded struct {
	id      []byte
	line    lineRef
	version int64
	deleted bool
}

// foldBatch is how many records go from reader to indexer at a time.
const foldBatch = 4096

// find returns the pending row of the Id id, if any. hint is the row
// after the one found last in the same file, checked first: changes
// mostly come in the order of the table (a bulk update, a reload), and
// the check reads the next row of the arena where a lookup in a map of a
// million Ids misses the cache about three times.
func (fd *fold) find(id []byte, hint *int32) (int32, bool) {
	if h := *hint; h >= 0 && int(h) < len(fd.rows) && fd.hasID(h, id) {
		*hint = h + 1
		return h, true
	}
	k, ok := fd.byID[string(id)]
	if ok {
		*hint = k + 1
	}
	return k, ok
}

// hasID reports whether pending row k is of the Id id.
func (fd *fold) hasID(k int32, id []byte) bool {
	return startsWithID(fd.lines.bytes(fd.rows[k].line), id)
}

// startsWithID reports whether the first field of line, a record of at
// least two fields, is id, a whole raw field: it is when line starts with
// id and a comma (a quoted id ends at its closing quote wherever it is).
func startsWithID(line, id []byte) bool {
	return len(line) > len(id) && line[len(id)] == ',' && bytes.Equal(line[:len(id)], id)
}

// lowerHome sets *home to file unless it holds a lower file index.
func lowerHome(home *int32, file int32) {
	for {
		h := atomic.LoadInt32(home)
		if h >= 0 && h <= file {
			return
		}
		if atomic.CompareAndSwapInt32(home, h, file) {
			return
		}
	}
}

// inParallel calls fn(i) for every i in [0, n), on as many goroutines as
// there are processors: compaction is CPU-bound and, at the end of a bulk
// load, what the process waits for. The first error cancels the others.
func inParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(gctx, i)
		})
	}
	return g.Wait()
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
	// replace maps a removed file to the one that takes its place in the
	// table's file order (mergeSlots); added files go at the end.
	replace map[string]File
	// namer names the new files (publish.go).
	namer namer
}

// foldFactor times CompactRows bounds the change rows one compaction
// folds. Every compaction rewrites the partition files its changes touch,
// so folding a bulk change in small rounds rewrites a file per round (a
// 1M-row update in rounds of 100k rewrote its table five times over); a
// fold costs about 220 bytes of memory per row, 110 MB at the default.
// Settle, which runs when the stream has stopped and its memory is free,
// folds twice as many.
const foldFactor = 10

// compact folds the oldest change files of an in-place table into its
// partition files. Only files that hold a changed Id are rewritten (plus,
// for new Ids, one small file of their partition); the rest are read once,
// streaming, to find the changed Ids (an Id's partition is not known from a
// delete, which carries no values). It folds the oldest change files up to
// limit rows (more when one change file is bigger). Memory holds the folded
// changes only; each
// row of the folded files is held once, in an arena, and each Id with
// about 60 bytes of index.
//
// The change files are read in order; the partition files, twice (to find
// the changed Ids, then to rewrite), several at a time. The outcome does
// not depend on that order: an Id's home is the lowest-numbered file
// holding an older version, and the new objects are named in file order
// before the rewrite starts.
func (l *csvFormat) compact(ctx context.Context, ts *TableState, limit int64) (*compaction, error) {
	now := l.now().UTC()
	ix := indexesOf(ts)
	c := &compaction{table: ts.Name, generation: ts.Generation, namer: l.namer()}
	var rows int64
	for _, f := range ts.Changes {
		if rows >= limit && len(c.folded) > 0 {
			break
		}
		rows += f.Rows
		c.folded = append(c.folded, f.Path)
	}
	fd, err := l.foldChanges(ctx, ts, ix, c, rows)
	if err != nil {
		return nil, err
	}
	// Pass 1: find the files holding changed Ids.
	rewrite := make([]bool, len(ts.Files))
	err = inParallel(ctx, len(ts.Files), func(ctx context.Context, i int) error {
		hint := int32(-1)
		return l.scanRecords(ctx, ts.Name, ts.Files[i].Path, ix, func(_ []byte, r rowKey) error {
			k, ok := fd.find(r.id, &hint)
			if !ok {
				return nil
			}
			p := &fd.rows[k]
			if r.version >= p.version {
				atomic.StoreUint32(&p.superseded, 1)
				return nil
			}
			rewrite[i] = true
			lowerHome(&p.home, int32(i))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// New Ids go to their partition: into its smallest file when that one
	// is small (it is rewritten anyway or cheap to rewrite), else a new one.
	fresh := map[string][]int32{}
	for k := range fd.rows {
		p := &fd.rows[k]
		if p.superseded == 1 || p.deleted || p.home >= 0 {
			continue
		}
		part := l.partitionOf(ts, ix, fd.lines.bytes(p.line), now)
		fresh[part] = append(fresh[part], int32(k))
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
	// Pass 2: rewrite, under names taken in file order.
	var idxs []int
	var names []string
	for i, r := range rewrite {
		if r {
			idxs = append(idxs, i)
			names = append(names, l.partitionName(ts.Name, ts, ts.Files[i].Partition))
		}
	}
	rewritten := make([]*File, len(idxs))
	err = inParallel(ctx, len(idxs), func(ctx context.Context, j int) error {
		i := idxs[j]
		var add []int32
		if part, ok := target[i]; ok {
			add = fresh[part]
		}
		f, err := l.rewriteFile(ctx, ts, fd, i, names[j], add, now)
		rewritten[j] = f
		return err
	})
	for j, f := range rewritten {
		old := ts.Files[idxs[j]]
		c.removed = append(c.removed, old.Path)
		if f != nil {
			// The rewrite is published under the name of the file it
			// replaces.
			f.Name = old.Name
			c.added = append(c.added, *f)
		}
	}
	cleanup := func(err error) (*compaction, error) {
		for _, f := range c.added {
			_ = l.st.Delete(context.WithoutCancel(ctx), f.Path)
		}
		return nil, err
	}
	if err != nil {
		return cleanup(err)
	}
	for _, part := range target {
		delete(fresh, part)
	}
	parts := make([]string, 0, len(fresh))
	for part := range fresh {
		parts = append(parts, part)
	}
	sort.Strings(parts)
	for _, part := range parts {
		var ow *objWriter
		for _, k := range fd.sortedByID(fresh[part]) {
			line := fd.lines.bytes(fd.rows[k].line)
			if ow != nil && (ow.file.Rows >= int64(l.opts.MaxFileRows) || ow.file.Bytes+int64(len(line)) > int64(maxFileBytes)) {
				f, err := ow.close()
				if err != nil {
					return cleanup(err)
				}
				c.added = append(c.added, f)
				ow = nil
			}
			if ow == nil {
				var err error
				if ow, err = createObject(ctx, l.st, l.partitionName(ts.Name, ts, part), part, now); err != nil {
					return cleanup(err)
				}
			}
			if err := ow.row(line); err != nil {
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

// rewriteFile writes partition file i of ts anew as object name: changed
// Ids whose home it is get their new version, other changed or deleted
// Ids go, unchanged rows are copied byte for byte; then the new Ids add,
// in Id order. It returns nil when nothing is left (the object is
// discarded).
func (l *csvFormat) rewriteFile(ctx context.Context, ts *TableState, fd *fold, i int, name string, add []int32, now time.Time) (*File, error) {
	old := ts.Files[i]
	r, err := l.st.Open(ctx, old.Path)
	if err != nil {
		return nil, fmt.Errorf("table %s: reading %s: %w", ts.Name, old.Path, err)
	}
	defer r.Close()
	ow, err := createObject(ctx, l.st, name, old.Partition, now)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*File, error) {
		_ = ow.w.Abort()
		return nil, err
	}
	rr := newRecordReader(r)
	defer rr.release()
	var buf []byte
	hint := int32(-1)
	for {
		line, err := rr.nextLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("table %s: %s: %w", ts.Name, old.Path, err))
		}
		if rr.n%checkEvery == 0 && ctx.Err() != nil {
			return fail(ctx.Err())
		}
		// Pass 1 checked every record of the file (objects never change):
		// only the Id is needed now, and the SinkCreatedOn of a home row.
		sc := newFieldScanner(line)
		start, end, err := sc.next()
		if err != nil {
			return fail(fmt.Errorf("table %s: %s: record %d: %w", ts.Name, old.Path, rr.n, err))
		}
		k, ok := fd.find(line[start:end], &hint)
		if !ok || fd.rows[k].superseded == 1 {
			if err := ow.row(line); err != nil {
				return fail(err)
			}
			continue
		}
		p := &fd.rows[k]
		if p.deleted || p.home != int32(i) || p.emitted {
			continue
		}
		// This is the row pass 1 made the home: the first of the Id in
		// its file (an earlier one would be newer, so superseding).
		p.emitted = true
		row := fd.lines.bytes(p.line)
		start, end, err = sc.next()
		if err != nil {
			return fail(fmt.Errorf("table %s: %s: record %d: %w", ts.Name, old.Path, rr.n, err))
		}
		if start < end {
			if buf, err = withSinkCreated(buf[:0], row, line[start:end]); err != nil {
				return fail(fmt.Errorf("table %s: a folded change: %w", ts.Name, err))
			}
			row = buf
		}
		if err := ow.row(row); err != nil {
			return fail(err)
		}
	}
	for _, k := range fd.sortedByID(add) {
		if err := ow.row(fd.lines.bytes(fd.rows[k].line)); err != nil {
			return fail(err)
		}
	}
	if ow.file.Rows == 0 {
		_ = ow.w.Abort()
		return nil, nil
	}
	f, err := ow.close()
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// partitionOf is where a new Id goes: by its partition column, else by
// the time of the compaction.
func (l *csvFormat) partitionOf(ts *TableState, ix layoutIndexes, line []byte, now time.Time) string {
	if ix.partCol >= 0 {
		sc := newFieldScanner(line)
		for k := 0; sc.more(); k++ {
			start, end, err := sc.next()
			if err != nil {
				break
			}
			if k < ix.partCol {
				continue
			}
			if v, err := decodeValue(ts.Columns[ix.partCol].Type, string(line[start:end])); err == nil && v != nil {
				// As the partitioner: a time outside 1..9999 or an
				// infinite one goes to the fixed partition.
				if _, ok := v.(schema.InfiniteTime); ok {
					return NoPartition
				}
				if tm, ok := v.(time.Time); ok {
					if y := tm.UTC().Year(); y < 1 || y > 9999 {
						return NoPartition
					}
					return tm.UTC().Format(partitionLayout(ts.Options.Granularity))
				}
			}
			break
		}
	}
	return now.Format(partitionLayout(ts.Options.Granularity))
}

// sortedByID orders rows of fd by Id, so that output is deterministic.
func (fd *fold) sortedByID(ks []int32) []int32 {
	type keyed struct {
		id []byte
		k  int32
	}
	byID := make([]keyed, len(ks))
	for j, k := range ks {
		line := fd.lines.bytes(fd.rows[k].line)
		// Folded rows were checked: the first field is there.
		sc := newFieldScanner(line)
		start, end, _ := sc.next()
		byID[j] = keyed{line[start:end], k}
	}
	slices.SortFunc(byID, func(a, b keyed) int { return bytes.Compare(a.id, b.id) })
	for j := range byID {
		ks[j] = byID[j].k
	}
	return ks
}

func partitionLayout(g Granularity) string {
	if g == Month {
		return "2006-01"
	}
	return "2006"
}

// withSinkCreated appends line to dst with its SinkCreatedOn replaced by
// sinkCreated, so that a record keeps the time it first reached the lake.
func withSinkCreated(dst, line, sinkCreated []byte) ([]byte, error) {
	sc := newFieldScanner(line)
	if _, _, err := sc.next(); err != nil {
		return nil, err
	}
	if !sc.more() {
		return nil, fmt.Errorf("%w: no SinkCreatedOn field", errBadRecord)
	}
	start, end, err := sc.next()
	if err != nil {
		return nil, err
	}
	dst = append(dst, line[:start]...)
	dst = append(dst, sinkCreated...)
	return append(dst, line[end:]...), nil
}

// Apply implements Work: the table's files without the rewritten and
// folded ones, plus the new ones. Change files and files that commits added
// meanwhile stay.
func (c *compaction) Apply(ts *TableState, now time.Time) (*TableState, []string, bool) {
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
		if r, ok := c.replace[f.Path]; ok {
			nts.Files = append(nts.Files, r)
		}
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
	c.namer.name(&nts)
	return &nts, append(append([]string(nil), c.removed...), c.folded...), true
}

func (c *compaction) Table() string { return c.table }

func (c *compaction) Written() []string {
	out := make([]string, 0, len(c.added)+len(c.replace)+1)
	for _, f := range c.added {
		out = append(out, f.Path)
	}
	for _, f := range c.replace {
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
func (l *csvFormat) mergeChanges(ctx context.Context, ts *TableState) (*compaction, error) {
	now := l.now().UTC()
	ow, err := createObject(ctx, l.st, l.changeName(ts), "", now)
	if err != nil {
		return nil, err
	}
	c := &compaction{table: ts.Name, generation: ts.Generation, namer: l.namer()}
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
func (l *csvFormat) small(f File) bool {
	return f.Rows < int64(l.opts.MaxFileRows/8) && f.Bytes < int64(maxFileBytes/8)
}

// copySmallDivisor replaces 8 in small for the files of an initial copy.
// A copy writes files of about MaxFileRows rows through a Stage, plus a
// smaller one per partition at each of its commits (every 10 s); merging
// a copy's files rewrites the table it just wrote (when copies wrote a
// file per 10 000-row batch, that cost a 1M-row Postgres copy 20% of its
// CPU and 30% of its time). Only tiny files are merged.
const copySmallDivisor = 64

// crowdedFiles is the count of files of a partition at which the files of
// the initial copy are merged as any others: every commit record holds the
// table's file list, so unmerged files would make records grow with the
// table.
const crowdedFiles = 512

// mergeable reports whether f, a partition file of ts, is small enough to
// merge: small, or for a file the initial copy wrote (before the commit
// that completed it) in a partition that is not crowded, under a
// sixty-fourth of both bounds.
func (l *csvFormat) mergeable(ts *TableState, f File, crowded bool) bool {
	if !crowded && (ts.InitialSyncCompleted.IsZero() || !f.Written.After(ts.InitialSyncCompleted)) {
		return f.Rows < int64(l.opts.MaxFileRows/copySmallDivisor) && f.Bytes < int64(maxFileBytes/copySmallDivisor)
	}
	return l.small(f)
}

// mergeSmallFiles concatenates the mergeable files of each partition that
// has collected smallFilesToMerge of them into files of at most MaxFileRows
// rows. Rows are copied byte for byte, in order. An append-only table's
// files are merged only within their published file (mergeSlots), so that
// published files only grow; settle merges those at once.
func (l *csvFormat) mergeSmallFiles(ctx context.Context, ts *TableState, settle bool) (*compaction, error) {
	if ts.Options.AppendOnly {
		return l.mergeSlots(ctx, ts, settle)
	}
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
	now := l.now().UTC()
	c := &compaction{table: name, generation: ts.Generation, namer: l.namer()}
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
				if ow, err = createObject(ctx, l.st, l.partitionName(ts.Name, ts, p), p, now); err != nil {
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
