package sqldb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// cacheQueries cover the live view (merge-on-read of updates, deletes,
// re-creations and out-of-order versions) and the snapshot view.
var cacheQueries = []string{
	`SELECT right(CAST(Id AS VARCHAR), 2), name, versionnumber, IsDelete, SinkModifiedOn, createdon FROM account ORDER BY Id`,
	`SELECT right(CAST(Id AS VARCHAR), 2), name FROM account_partitioned ORDER BY Id`,
	`SELECT count(*), count(name), max(versionnumber) FROM account WHERE name LIKE 'n%'`,
	`SELECT name FROM account WHERE Id = '00000000-0000-0000-0000-000000000003'`,
}

// mergeTable is an in-place table with two partition files, a snapshot and
// change files that update, delete, re-create and deliver out of order.
func mergeTable(l *testLake) *lake.TableState {
	tab := nameTable("account")
	tab.Files = []lake.File{
		l.write("account/2020_1_1.csv", row(1, "n1", 1, false)+row(2, "n2", 1, false)+row(3, "n3", 1, false)),
		l.write("account/2021_1_1.csv", row(4, "n4", 1, false)+row(5, "n5", 4, false)),
	}
	tab.Snapshots = []lake.Snapshot{{Files: tab.Files}}
	tab.Changes = []lake.File{
		l.write("_lakelink/changes/account/1.csv", row(1, "n1 updated", 2, false)+row(2, "", 2, true)+row(6, "n6 new", 1, false)),
		l.write("_lakelink/changes/account/2.csv", row(2, "n2 again", 3, false)+row(1, "n1 stale", 1, false)+row(5, "n5 stale", 3, false)),
	}
	return tab
}

func results(t testing.TB, db *DB) [][]string {
	t.Helper()
	out := make([][]string, len(cacheQueries))
	for i, q := range cacheQueries {
		out[i] = query(t, db, q)
	}
	return out
}

// cachedViews counts the views that read a cache file.
func cachedViews(db *DB) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	n := 0
	for _, v := range db.views {
		if strings.Contains(v, "read_parquet") {
			n++
		}
	}
	return n
}

// TestCacheSwitch: the views read the CSV files until the cache holds them,
// then switch without a new commit, the change files stay CSV, and the
// results do not change; a view over some cached and some new files reads
// both.
func TestCacheSwitch(t *testing.T) {
	l := newTestLake(t)
	tab := mergeTable(l)
	l.commit(tab)
	want := results(t, l.open())

	dir := t.TempDir()
	db := l.openWith(Options{CacheDir: dir})
	if n := cachedViews(db); n != 0 {
		t.Errorf("%d views read the cache right after Open; conversion must not happen inside Open", n)
	}
	if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
		t.Errorf("before the cache: got %q, want %q", got, want)
	}
	seq := db.seq
	warm(t, db)
	if n := cachedViews(db); n != 2 {
		t.Errorf("%d views read the cache once warm, want 2 (account, account_partitioned)", n)
	}
	if db.seq != seq {
		t.Errorf("the switch needed a commit: seq %d -> %d", seq, db.seq)
	}
	live := db.views[sqlName{mainSchema, "account"}]
	if !strings.Contains(live, "read_csv") || !strings.Contains(live, "changes/account/2.csv") {
		t.Errorf("the change files must stay CSV: %s", live)
	}
	if strings.Contains(live, "account/2020_1_1.csv") {
		t.Errorf("the live view still reads a cached partition file: %s", live)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if len(entries) != 2 {
		t.Errorf("cache holds %q, want one entry per partition file (the snapshot shares them)", entries)
	}
	if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
		t.Errorf("from the cache: got %q, want %q", got, want)
	}

	// A new partition file: the view reads the cached ones and the new CSV.
	next := *tab
	next.Files = append(slices.Clone(tab.Files), l.write("account/2022_1_1.csv", row(7, "n7", 1, false)))
	l.commit(&next)
	if err := db.refresh(t.Context(), need{}); err != nil {
		t.Fatal(err)
	}
	live = db.views[sqlName{mainSchema, "account"}]
	if !strings.Contains(live, "read_parquet") || !strings.Contains(live, "account/2022_1_1.csv") {
		t.Errorf("the view should read the cache and the new CSV file: %s", live)
	}
	got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 2), name FROM account ORDER BY Id`)
	wantMixed := []string{"01|n1 updated", "02|n2 again", "03|n3", "04|n4", "05|n5", "06|n6 new", "07|n7"}
	if !slices.Equal(got, wantMixed) {
		t.Errorf("mixed: got %q, want %q", got, wantMixed)
	}
	warm(t, db)
	if got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 2), name FROM account ORDER BY Id`); !slices.Equal(got, wantMixed) {
		t.Errorf("mixed, warm: got %q, want %q", got, wantMixed)
	}
}

func flat(r [][]string) []string {
	var out []string
	for i, rows := range r {
		out = append(out, fmt.Sprintf("query %d: %d rows", i, len(rows)))
		out = append(out, rows...)
	}
	return out
}

// TestCacheStale: a cache entry is never read for a file of the same path
// but another size, nor under another layout.
func TestCacheStale(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("account")
	tab.Files = []lake.File{l.write("account/2020_1_1.csv", row(1, "first", 1, false))}
	l.commit(tab)
	db := l.openCached()
	if got := query(t, db, `SELECT name FROM account`); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("got %q", got)
	}
	cached := db.views[sqlName{mainSchema, "account"}]

	tests := []struct {
		name   string
		change func() *lake.TableState
		q      string
		want   []string
	}{
		{"same path, other size", func() *lake.TableState {
			next := *tab
			next.Files = []lake.File{l.write("account/2020_1_1.csv", row(1, "second, longer", 1, false))}
			return &next
		}, `SELECT name FROM account`, []string{"second, longer"}},
		{"same path and size, grown layout", func() *lake.TableState {
			next := *tab
			next.Columns = append(slices.Clone(tab.Columns), lake.Column{Name: "extra", Type: schema.Int64})
			next.Files = []lake.File{l.write("account/2020_1_1.csv", strings.TrimSuffix(row(1, "second, longer", 1, false), "\n")+",42\n")}
			// The old file name, the old size: only the layout differs.
			next.Files[0].Path = "account/2020_1_1.csv"
			return &next
		}, `SELECT name, extra FROM account`, []string{"second, longer|42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l.commit(tt.change())
			if got := query(t, db, tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("before conversion: got %q, want %q", got, tt.want)
			}
			if v := db.views[sqlName{mainSchema, "account"}]; strings.Contains(v, "read_parquet") {
				t.Errorf("the view reads a cache entry before the new file is converted: %s", v)
			}
			warm(t, db)
			if v := db.views[sqlName{mainSchema, "account"}]; v == cached || !strings.Contains(v, "read_parquet") {
				t.Errorf("the view should read a new cache entry: %s", v)
			}
			cached = db.views[sqlName{mainSchema, "account"}]
			if got := query(t, db, tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("from the cache: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCacheCorrupt: an unreadable cache file, found on disk or broken while
// in use, is never a failed query: the CSV file is read instead.
func TestCacheCorrupt(t *testing.T) {
	l := newTestLake(t)
	tab := mergeTable(l)
	l.commit(tab)
	want := results(t, l.open())
	// The entry of the first partition file exists, but holds garbage
	// (another process's file system went wrong; a partial write is never
	// under the final name).
	dir := t.TempDir()
	fi, err := os.Stat(l.st.Location(tab.Files[0].Path))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, cacheKey(tab.Files[0].Path, fi.Size(), columns(tab.Columns))+".parquet")
	if err := os.WriteFile(bad, []byte("PAR1 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := l.openWith(Options{CacheDir: dir})
	warm(t, db)
	if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
		t.Errorf("with a garbage entry on disk: got %q, want %q", got, want)
	}
	if n := cachedViews(db); n != 2 {
		t.Errorf("%d views read the cache, want 2: the garbage entry is converted again", n)
	}
	if got := query(t, db, `SELECT count(*) FROM read_parquet(?)`, bad); !slices.Equal(got, []string{"3"}) {
		t.Errorf("the entry was not replaced: %q", got)
	}

	for _, breakIt := range []struct {
		name string
		do   func(path string) error
	}{
		{"truncated", func(p string) error { return os.Truncate(p, 100) }},
		{"deleted", os.Remove},
		{"garbled", func(p string) error {
			// DuckDB fails on these without naming the file ("Invalid
			// Error: don't know what type").
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := 4; i < len(b)/2; i++ {
				b[i] ^= 0x5a
			}
			return os.WriteFile(p, b, 0o644)
		}},
	} {
		t.Run(breakIt.name, func(t *testing.T) {
			damage := func() {
				t.Helper()
				entries, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
				if len(entries) == 0 {
					t.Fatal("no cache entry to break")
				}
				for _, e := range entries {
					if err := breakIt.do(e); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The first time, the files are converted again.
			damage()
			if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
				t.Errorf("got %q, want %q", got, want)
			}
			warm(t, db)
			if n := cachedViews(db); n != 2 {
				t.Errorf("%d views read the cache after the damage, want 2 (converted again)", n)
			}
			if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
				t.Errorf("converted again: got %q, want %q", got, want)
			}
			// The second time, they stay CSV.
			damage()
			if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
				t.Errorf("damaged again: got %q, want %q", got, want)
			}
			warm(t, db)
			if n := cachedViews(db); n != 0 {
				t.Errorf("%d views read entries damaged twice", n)
			}
			// A new commit of other files builds the cache again.
			next := mergeTable(l)
			next.Files = []lake.File{l.write(fmt.Sprintf("account/%s.csv", breakIt.name), row(1, "n1", 1, false)+row(2, "n2", 1, false)+row(3, "n3", 1, false)+row(4, "n4", 1, false)+row(5, "n5", 4, false))}
			next.Snapshots = []lake.Snapshot{{Files: next.Files}}
			l.commit(next)
			warm(t, db)
			if n := cachedViews(db); n != 2 {
				t.Errorf("%d views read the cache after a new commit, want 2", n)
			}
			if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
				t.Errorf("new entries: got %q, want %q", got, want)
			}
		})
	}
}

// TestCacheConcurrent runs queries from several goroutines while the cache
// converts the files and refreshes switch the views to it: no query fails
// or sees other rows.
func TestCacheConcurrent(t *testing.T) {
	l := newTestLake(t)
	tab := bigTable(t, l, 40_000, 5_000, 2)
	tab.Snapshots = []lake.Snapshot{{Files: tab.Files}}
	l.commit(tab)
	qs := []string{
		`SELECT count(*), sum(amount), max(due), count(DISTINCT customerid) FROM salesorder`,
		`SELECT count(*), sum(quantity) FROM salesorder_partitioned`,
		`SELECT * FROM salesorder WHERE Id = '00000000-0000-0000-0000-000000000194'`,
	}
	csv := l.open()
	want := make([][]string, len(qs))
	for i, q := range qs {
		want[i] = query(t, csv, q)
	}
	db := l.openWith(Options{CacheDir: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 3 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				q := qs[(g+n)%len(qs)]
				rows, err := db.Query(ctx, q)
				if err == nil {
					var got []string
					got, err = collect(rows)
					rows.Close()
					if err == nil && !slices.Equal(got, want[(g+n)%len(qs)]) {
						err = fmt.Errorf("%s: got %q, want %q", q, got, want[(g+n)%len(qs)])
					}
				}
				if err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		})
	}
	warm(t, db)
	// Keep querying a little on the warm cache, then stop.
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := cachedViews(db); n != 2 {
		t.Errorf("%d views read the cache, want 2", n)
	}
}

// TestCacheEviction: entries no committed state names go after the grace
// period; beyond the size limit the least recently used of them go at once;
// a full cache converts nothing more and queries read the CSV files.
func TestCacheEviction(t *testing.T) {
	l := newTestLake(t)
	a, b := nameTable("a"), nameTable("b")
	a.Files = []lake.File{l.write("a/2020_1_1.csv", row(1, "a", 1, false))}
	b.Files = []lake.File{l.write("b/2020_1_1.csv", row(2, "b", 1, false))}
	l.commit(a, b)
	dir := t.TempDir()
	db := l.openWith(Options{CacheDir: dir})
	warm(t, db)
	entries := func() []string {
		e, _ := filepath.Glob(filepath.Join(dir, "*"))
		return e
	}
	if got := entries(); len(got) != 2 {
		t.Fatalf("cache holds %q, want 2 entries", got)
	}
	// A leftover of a conversion that died long ago.
	tmp := filepath.Join(dir, "0123.x.tmp")
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}
	db.cache.mu.Lock()
	db.cache.grace = 0
	db.cache.mu.Unlock()
	l.drop("b")
	until(t, func() bool {
		query(t, db, `SELECT 1`)
		return len(entries()) == 1
	})
	if got := query(t, db, `SELECT name FROM a`); !slices.Equal(got, []string{"a"}) {
		t.Errorf("got %q", got)
	}
	if n := cachedViews(db); n != 1 {
		t.Errorf("%d views read the cache, want 1 (a; a has no snapshot)", n)
	}

	t.Run("least recently used beyond the limit", func(t *testing.T) {
		dir := t.TempDir()
		now := time.Now()
		for i, age := range []time.Duration{30 * time.Second, 10 * time.Second, 20 * time.Second} {
			p := filepath.Join(dir, fmt.Sprintf("%040x.parquet", i))
			if err := os.WriteFile(p, make([]byte, 1000), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
				t.Fatal(err)
			}
		}
		l := newTestLake(t)
		l.commit(nameTable("c"))
		l.openWith(Options{CacheDir: dir, CacheLimit: 2500})
		want := []string{filepath.Join(dir, fmt.Sprintf("%040x.parquet", 1)), filepath.Join(dir, fmt.Sprintf("%040x.parquet", 2))}
		until(t, func() bool {
			got, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
			return slices.Equal(got, want)
		})
	})

	t.Run("full", func(t *testing.T) {
		l := newTestLake(t)
		c := nameTable("c")
		c.Files = []lake.File{l.write("c/2020_1_1.csv", row(3, "c", 1, false))}
		l.commit(c)
		dir := t.TempDir()
		db := l.openWith(Options{CacheDir: dir, CacheLimit: 1})
		warm(t, db)
		if got := query(t, db, `SELECT name FROM c`); !slices.Equal(got, []string{"c"}) {
			t.Errorf("got %q", got)
		}
		if got, _ := filepath.Glob(filepath.Join(dir, "*")); len(got) != 0 || cachedViews(db) != 0 {
			t.Errorf("a full cache converted %q", got)
		}
	})
}

// until polls ok for up to 10 s.
func until(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// TestCacheClose: Close stops a running conversion and leaves no temporary
// file.
func TestCacheClose(t *testing.T) {
	l := newTestLake(t)
	tab := bigTable(t, l, 20_000, 20_000, 0)
	l.commit(tab)
	dir := t.TempDir()
	db, err := OpenWith(t.Context(), l.st, l.load, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) != 0 {
		t.Errorf("Close left %q", tmp)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	a, err := DefaultCacheDir("/lakes/one")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultCacheDir("/lakes/two")
	base, _ := os.UserCacheDir()
	if a == b || filepath.Dir(a) != filepath.Join(base, "lakelink") {
		t.Errorf("got %s and %s, want two folders under %s", a, b, filepath.Join(base, "lakelink"))
	}
}

func TestRowGroupSize(t *testing.T) {
	tests := []struct {
		name    string
		rowSize int
		rows    int
		want    int // 0: errWideRows
	}{
		{"narrow rows get DuckDB's default", 30, 1000, maxGroup},
		{"140-byte rows", 140, 100_000, groupBytes / 140},
		{"4 kB rows", 4000, 3000, minGroup},
		{"one 1 MB row", 1 << 20, 1, minGroup},
		{"10 kB rows in a big file", 10_000, 2000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f.csv")
			line := strings.Repeat("x", tt.rowSize-1) + "\n"
			if err := os.WriteFile(p, []byte(strings.Repeat(line, tt.rows)), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := rowGroupSize(p, int64(tt.rowSize*tt.rows))
			if tt.want == 0 {
				if !errors.Is(err, errWideRows) {
					t.Errorf("got %d, %v; want errWideRows", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestCacheLakeSweep: a default cache directory records its lake, and the
// caches of lakes that no longer exist go once unused for an hour; others
// stay (issue #15, case 17: a cache another process is writing, or whose
// lake-root is empty or relative, is not removed).
func TestCacheLakeSweep(t *testing.T) {
	parent := t.TempDir()
	gone := filepath.Join(parent, "gone")
	kept := filepath.Join(parent, "kept")
	foreign := filepath.Join(parent, "foreign")
	empty := filepath.Join(parent, "empty")
	relative := filepath.Join(parent, "relative")
	recent := filepath.Join(parent, "recent")
	elsewhere := filepath.Join(parent, "elsewhere")
	deleted := filepath.Join(t.TempDir(), "deleted lake")
	old := time.Now().Add(-2 * staleTemp)
	for dir, root := range map[string]string{gone: deleted, kept: t.TempDir(), foreign: "-", empty: "", relative: "lake", recent: deleted, elsewhere: deleted} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if dir == elsewhere {
			// Owned by a process of another host: nothing here proves it dead.
			if err := os.WriteFile(filepath.Join(dir, ownerPrefix+"other-host-1"), []byte(`{"host":"other-host","pid":1}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if root != "-" {
			if err := os.WriteFile(filepath.Join(dir, rootFile), []byte(root), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if dir != recent {
			for _, p := range []string{filepath.Join(dir, rootFile), filepath.Join(dir, ownerPrefix+"other-host-1"), dir} {
				_ = os.Chtimes(p, old, old)
			}
		}
	}
	l := newTestLake(t)
	tab := nameTable("a")
	tab.Files = []lake.File{l.write("a/2020_1_1.csv", row(1, "a", 1, false))}
	l.commit(tab)
	own := filepath.Join(parent, "own")
	db, err := open(t.Context(), l.st, l.load, Options{CacheDir: own}, l.st.Location(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	warm(t, db)
	for dir, want := range map[string]bool{gone: false, kept: true, foreign: true, own: true, empty: true, relative: true, recent: true, elsewhere: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", dir, err == nil, want)
		}
	}
	if root, err := os.ReadFile(filepath.Join(own, rootFile)); err != nil || string(root) != l.st.Location("") {
		t.Errorf("recorded root %q, %v; want %q", root, err, l.st.Location(""))
	}
}

func TestWaitCache(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("a")
	tab.Files = []lake.File{l.write("a/2020_1_1.csv", row(1, "a", 1, false))}
	l.commit(tab)
	if err := l.open().WaitCache(t.Context()); err != nil {
		t.Errorf("cache off: %v", err)
	}
	db := l.openWith(Options{CacheDir: t.TempDir()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.WaitCache(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: got %v, want context.Canceled", err)
	}
	if err := db.WaitCache(t.Context()); err != nil || cachedViews(db) != 1 {
		t.Errorf("got %v with %d cached views, want nil and 1", err, cachedViews(db))
	}
}

// TestCacheGarbled: a cache file whose pages are damaged so that DuckDB's
// error does not name it ("Invalid Error: don't know what type") is found
// by reading the cache files in full; the query still succeeds.
func TestCacheGarbled(t *testing.T) {
	l := newTestLake(t)
	l.commit(mergeTable(l))
	want := results(t, l.open())
	dir := t.TempDir()
	db := l.openWith(Options{CacheDir: dir})
	warm(t, db)
	entries, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	for _, p := range entries {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 4; i < len(b)/2; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.sql.Query(cacheQueries[0]); err == nil || entryName.MatchString(err.Error()) {
		t.Fatalf("the damage should fail DuckDB without naming the file: %v", err)
	}
	if got := results(t, db); !slices.Equal(flat(got), flat(want)) {
		t.Errorf("got %q, want %q", got, want)
	}
	warm(t, db)
	if got := results(t, db); !slices.Equal(flat(got), flat(want)) || cachedViews(db) != 2 {
		t.Errorf("converted again: got %q with %d cached views, want %q and 2", got, cachedViews(db), want)
	}
}
