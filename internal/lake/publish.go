package lake

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/store"
)

// Synapse-named files (docs/lake-format.md, "Published files").
//
// lakelink's committed state names immutable objects under fresh names
// (_lakelink/data/..., docs/commit-protocol.md); consumers of Synapse output
// instead derive <table>/<name>.csv from model.json partition names and
// follow files by name, some by byte offset. So every partition file of the
// state carries a Synapse name (File.Name: "2024", "2024_001", ... or
// "2024-03" for Month), and Maintain publishes <table>/<Name>.csv as a
// server-side copy of the file (store.Copy: a hard link locally, no byte
// rewritten), replacing the previous one atomically.
//
// Invariants:
//   - a published file only ever holds the content of a committed file of
//     its name, so a reader of it never sees a half-written or uncommitted
//     row;
//   - in an append-only table, the files sharing a Name are, in state order,
//     one published file: it is published as its first file, and merging
//     them (mergeSlots) makes a file whose content starts with what was
//     published. So a published file of an append-only table only grows by
//     whole rows (or stays): a reader that remembers a byte offset misses,
//     duplicates and loses nothing;
//   - a published name is never deleted while its table exists: a name no
//     file carries any more (an in-place compaction needed fewer files, a
//     reset) is replaced by an empty file. A dropped table's are deleted.
//
// In incremental-update folder mode nothing is published in the table
// folders: each finished folder gets its own Synapse-named files
// (publishFolder).

// dataDir holds lakelink's own partition files.
const dataDir = stateDir + "data/"

// publishDelay is how long the files of an append-only table's published
// file wait before they are merged, so that the published file grows (a
// rewrite of it, see mergeSlots) at most that often while a stream
// commits every second.
const publishDelay = 5 * time.Second

// publishCopies bounds the copies one table's publication runs at once.
const publishCopies = 8

// publishedRE matches a Synapse-named file in a table folder: table and
// stem (a partition, NoPartition included, and its optional file number).
var publishedRE = regexp.MustCompile(`^([^/]+)/((?:1|[0-9]{4}(?:-[0-9]{2})?)(?:_[0-9]{3,})?)\.csv$`)

// unknownSource marks a published file found in the store whose source is
// not known (after a restart): it is copied again.
const unknownSource = "?"

// slotName is the stem of the k-th (from 0) published file of partition p.
func slotName(p string, k int) string {
	if k == 0 {
		return p
	}
	return fmt.Sprintf("%s_%03d", p, k)
}

// slotOf is the inverse of slotName.
func slotOf(p, name string) (int, bool) {
	if name == p {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, p+"_")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	return k, err == nil && k > 0
}

// namer gives partition files their Synapse names.
type namer struct {
	// off in incremental-update folder mode: names are given when a
	// folder is finished.
	off bool
	// slotRows and slotBytes bound an append-only table's published
	// file: a new file joins the last one while both stay under them,
	// so that merging it (a rewrite) costs a bounded amount.
	slotRows, slotBytes int64
}

func (l *csvFormat) namer() namer {
	return namer{off: l.opts.Incremental.Enabled, slotRows: int64(l.opts.MaxFileRows / 8), slotBytes: int64(maxFileBytes / 8)}
}

// name gives every partition file of ts without a Name one, in place
// (ts.Files is copied first, it may be shared with an older state): in an
// in-place table the lowest free name of its partition; in an append-only
// table the name of its partition's last published file while that stays
// under the bounds, else the next.
func (n namer) name(ts *TableState) {
	if n.off || !slices.ContainsFunc(ts.Files, func(f File) bool { return f.Name == "" }) {
		return
	}
	type slots struct {
		used        map[int]bool
		last        int
		rows, bytes int64
	}
	per := map[string]*slots{}
	get := func(p string) *slots {
		s := per[p]
		if s == nil {
			s = &slots{used: map[int]bool{}, last: -1}
			per[p] = s
		}
		return s
	}
	files := slices.Clone(ts.Files)
	for _, f := range files {
		k, ok := slotOf(f.Partition, f.Name)
		if f.Name == "" || !ok {
			continue
		}
		s := get(f.Partition)
		s.used[k] = true
		if k > s.last {
			s.last, s.rows, s.bytes = k, 0, 0
		}
		if k == s.last {
			s.rows, s.bytes = s.rows+f.Rows, s.bytes+f.Bytes
		}
	}
	for i := range files {
		f := &files[i]
		if f.Name != "" {
			continue
		}
		s := get(f.Partition)
		k := 0
		switch {
		case ts.Options.AppendOnly && s.last >= 0 && s.rows+f.Rows <= n.slotRows && s.bytes+f.Bytes <= n.slotBytes:
			k = s.last
		case ts.Options.AppendOnly:
			k = s.last + 1
		default:
			for s.used[k] {
				k++
			}
		}
		if k > s.last {
			s.last, s.rows, s.bytes = k, 0, 0
		}
		if k == s.last {
			s.rows, s.bytes = s.rows+f.Rows, s.bytes+f.Bytes
		}
		s.used[k] = true
		f.Name = slotName(f.Partition, k)
	}
	ts.Files = files
}

// named returns ts with every partition file named: ts itself, or a copy
// when a state written before names existed left some unnamed.
func (n namer) named(ts *TableState) *TableState {
	if n.off || !slices.ContainsFunc(ts.Files, func(f File) bool { return f.Name == "" }) {
		return ts
	}
	c := *ts
	n.name(&c)
	return &c
}

// slot is one published file: its name and the files it is made of, in order.
type slot struct {
	name, partition string
	files           []File
}

// slotsOf lists the published files of ts, ordered by partition and name.
func slotsOf(ts *TableState) []slot {
	by := map[string]*slot{}
	for _, f := range ts.Files {
		s := by[f.Name]
		if s == nil {
			s = &slot{name: f.Name, partition: f.Partition}
			by[f.Name] = s
		}
		s.files = append(s.files, f)
	}
	out := make([]slot, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[name])
	}
	return out
}

// publishTable makes the published files of table name hold what its state
// ts names (ts nil: the table was dropped, its published files go). It
// copies only the files whose source changed since the last call.
// Called with maintainMu held.
func (l *csvFormat) publishTable(ctx context.Context, name string, ts *TableState) error {
	if l.opts.Incremental.Enabled {
		return nil
	}
	if l.derived.published == nil {
		l.derived.published = map[string]map[string]string{}
	}
	pub := l.derived.published[name]
	if pub == nil {
		pub = map[string]string{}
		l.derived.published[name] = pub
	}
	if ts == nil {
		for _, stem := range slices.Sorted(maps.Keys(pub)) {
			if err := l.st.Delete(ctx, name+"/"+stem+".csv"); err != nil {
				return fmt.Errorf("deleting the published files of dropped table %s: %w", name, err)
			}
			delete(pub, stem)
		}
		delete(l.derived.published, name)
		return nil
	}
	want := map[string]string{}
	for _, s := range slotsOf(l.namer().named(ts)) {
		want[s.name] = s.files[0].Path
	}
	var stale []string
	for _, stem := range slices.Sorted(maps.Keys(want)) {
		if pub[stem] != want[stem] {
			stale = append(stale, stem)
		}
	}
	// The copies share one sync of the table folder (store.Batch).
	b := store.NewBatch(l.st)
	done := make([]bool, len(stale))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(publishCopies)
	for i, stem := range stale {
		src := want[stem]
		g.Go(func() error {
			to := name + "/" + stem + ".csv"
			if err := b.Copy(gctx, src, to); err != nil {
				return fmt.Errorf("publishing %s of table %s as %s: %w", src, name, to, err)
			}
			done[i] = true
			return nil
		})
	}
	err := g.Wait()
	if serr := b.Sync(ctx); serr != nil && err == nil {
		err = fmt.Errorf("publishing table %s: %w", name, serr)
	}
	for i, stem := range stale {
		if done[i] {
			pub[stem] = want[stem]
		}
	}
	if err != nil {
		return err
	}
	for _, stem := range slices.Sorted(maps.Keys(pub)) {
		if _, ok := want[stem]; ok || pub[stem] == "" {
			continue
		}
		// Emptied, not deleted: a consumer that follows the file must
		// not find it gone.
		if err := store.Put(ctx, l.st, name+"/"+stem+".csv", nil); err != nil {
			return fmt.Errorf("emptying %s/%s.csv, which table %s no longer names: %w", name, stem, name, err)
		}
		pub[stem] = ""
	}
	return nil
}

// notePublished records the published files of the tables that a listing
// of the store shows, so that the first publication after Open copies each
// again (its source is unknown) and empties the ones no file names. A table
// folder is lakelink's when the state has the table, or when the lake still
// holds the table's Microsoft.Athena.TrickleFeedService/<table>-model.json,
// which lakelink writes for its tables only and deletes last when one is
// dropped: then the table was dropped by a run that stopped before it
// removed the derived files, and the first flush (writeDerived) removes
// them. Other folders are not lakelink's and are left alone.
func (l *csvFormat) notePublished(objs []store.Object, s *State) {
	manifests := map[string]bool{}
	for _, o := range objs {
		if t, ok := strings.CutPrefix(o.Name, trickleDir); ok {
			if t, ok := strings.CutSuffix(t, "-model.json"); ok {
				manifests[t] = true
			}
		}
	}
	for _, o := range objs {
		m := publishedRE.FindStringSubmatch(o.Name)
		if m == nil || s.Tables[m[1]] == nil && !manifests[m[1]] {
			continue
		}
		if l.derived.published == nil {
			l.derived.published = map[string]map[string]string{}
		}
		if l.derived.published[m[1]] == nil {
			l.derived.published[m[1]] = map[string]string{}
		}
		src := unknownSource
		if o.Size == 0 {
			src = ""
		}
		l.derived.published[m[1]][m[2]] = src
	}
	for t := range manifests {
		if s.Tables[t] == nil && l.derived.published[t] == nil {
			if l.derived.published == nil {
				l.derived.published = map[string]map[string]string{}
			}
			l.derived.published[t] = map[string]string{}
		}
	}
}

// mergeSlots concatenates, in every published file of append-only table ts
// made of several files, those files in order into one that takes the
// first one's place (compaction.replace): its content starts with the
// published file's, so the published file grows. A published file's files
// are merged once the second is publishDelay old, or at once when settle.
func (l *csvFormat) mergeSlots(ctx context.Context, ts *TableState, settle bool) (*compaction, error) {
	now := l.now().UTC()
	c := &compaction{table: ts.Name, generation: ts.Generation, namer: l.namer(), replace: map[string]File{}}
	fail := func(err error) (*compaction, error) {
		for _, f := range c.replace {
			_ = l.st.Delete(context.WithoutCancel(ctx), f.Path)
		}
		return nil, fmt.Errorf("merging the files of the published files of table %s: %w", ts.Name, err)
	}
	for _, s := range slotsOf(l.namer().named(ts)) {
		if len(s.files) < 2 || !settle && now.Sub(s.files[1].Written) < publishDelay {
			continue
		}
		ow, err := createObject(ctx, l.st, l.partitionName(ts.Name, ts, s.partition), s.partition, now)
		if err != nil {
			return fail(err)
		}
		for _, f := range s.files {
			if err := l.copyInto(ctx, ow, f); err != nil {
				_ = ow.w.Abort()
				return fail(err)
			}
			c.removed = append(c.removed, f.Path)
		}
		f, err := ow.close()
		if err != nil {
			return fail(err)
		}
		f.Name, f.Written = s.name, s.files[0].Written
		c.replace[s.files[0].Path] = f
	}
	if len(c.replace) == 0 {
		return nil, nil
	}
	return c, nil
}

// publishFolder writes the Synapse-named files of table ts in incremental
// folder folder, <folder>/<table>/<name>.csv, from the state's files of that
// folder, and returns them: per partition, runs of consecutive files up to
// MaxFileRows rows and about 128 MB each make one file, a copy of the file
// when the run is one file (the initial copy's large files), else their
// concatenation (the small files of a stream's commits); partition
// NoPartition's upserts and deletes go to separate files (publishNoPartition).
func (l *csvFormat) publishFolder(ctx context.Context, folder string, ts *TableState) ([]File, error) {
	byPart := map[string][]File{}
	for _, f := range ts.Files {
		if folderOfPath(f.Path) == folder {
			byPart[f.Partition] = append(byPart[f.Partition], f)
		}
	}
	var out []File
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		if p == NoPartition {
			files, err := l.publishNoPartition(ctx, folder, ts, byPart[p])
			if err != nil {
				return nil, fmt.Errorf("table %s, incremental folder %s: %w", ts.Name, folder, err)
			}
			if files != nil {
				out = append(out, files...)
				continue
			}
		}
		var runs [][]File
		var rows, bytes int64
		for _, f := range byPart[p] {
			if n := len(runs); n == 0 || rows+f.Rows > int64(l.opts.MaxFileRows) || bytes+f.Bytes > int64(maxFileBytes) {
				runs, rows, bytes = append(runs, nil), 0, 0
			}
			runs[len(runs)-1] = append(runs[len(runs)-1], f)
			rows, bytes = rows+f.Rows, bytes+f.Bytes
		}
		for k, run := range runs {
			stem := slotName(p, k)
			to := folder + "/" + ts.Name + "/" + stem + ".csv"
			f, err := l.concat(ctx, l.st, to, p, run)
			if err != nil {
				return nil, fmt.Errorf("table %s, incremental folder %s: %w", ts.Name, folder, err)
			}
			f.Name = stem
			out = append(out, f)
		}
	}
	return out, nil
}

// concat makes object to hold the files run, in order, written through st
// (the lake's store or a batch of it): a copy of the one file, or their
// concatenation.
func (l *csvFormat) concat(ctx context.Context, st store.Store, to, partition string, run []File) (File, error) {
	now := l.now().UTC()
	if len(run) == 1 {
		if err := st.Copy(ctx, run[0].Path, to); err != nil {
			return File{}, fmt.Errorf("copying %s to %s: %w", run[0].Path, to, err)
		}
		return File{Path: to, Partition: partition, Rows: run[0].Rows, Bytes: run[0].Bytes, Written: now}, nil
	}
	ow, err := createObject(ctx, st, to, partition, now)
	if err != nil {
		return File{}, err
	}
	for _, f := range run {
		if err := l.copyInto(ctx, ow, f); err != nil {
			_ = ow.w.Abort()
			return File{}, err
		}
	}
	return ow.close()
}

// publishNoPartition writes the Synapse-named files of partition NoPartition
// of table ts in incremental folder folder when the partition's files hold
// both deletes and upserts (upserts without a partition value meet the
// deletes there), and returns them; it returns nil, writing nothing, when
// every row is of one kind, and publishFolder then writes them as any
// partition. Each file it writes holds only upserts or only deletes, as
// Synapse's do: Estuary's capture takes a file's kind from its first row and
// fails on a file that mixes them. Upserts come first (1.csv, 1_001.csv,
// ...), then deletes, each file bounded as publishFolder's.
func (l *csvFormat) publishNoPartition(ctx context.Context, folder string, ts *TableState, files []File) ([]File, error) {
	ix := indexesOf(ts)
	var deletes, upserts bool
	for _, f := range files {
		err := l.scanRecords(ctx, ts.Name, f.Path, ix, func(_ []byte, r rowKey) error {
			deletes, upserts = deletes || r.deleted, upserts || !r.deleted
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !deletes || !upserts {
		return nil, nil
	}
	var out []File
	for _, wantDeleted := range []bool{false, true} {
		var ow *objWriter
		flush := func() error {
			if ow == nil {
				return nil
			}
			f, err := ow.close()
			if err != nil {
				return err
			}
			f.Name = slotName(NoPartition, len(out))
			out, ow = append(out, f), nil
			return nil
		}
		for _, f := range files {
			err := l.scanRecords(ctx, ts.Name, f.Path, ix, func(line []byte, r rowKey) error {
				if r.deleted != wantDeleted {
					return nil
				}
				if ow != nil && (ow.file.Rows >= int64(l.opts.MaxFileRows) || ow.file.Bytes+int64(len(line)) >= int64(maxFileBytes)) {
					if err := flush(); err != nil {
						return err
					}
				}
				if ow == nil {
					stem := slotName(NoPartition, len(out))
					w, err := createObject(ctx, l.st, folder+"/"+ts.Name+"/"+stem+".csv", NoPartition, l.now().UTC())
					if err != nil {
						return err
					}
					ow = w
				}
				return ow.row(line)
			})
			if err != nil {
				if ow != nil {
					_ = ow.w.Abort()
				}
				return nil, err
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
