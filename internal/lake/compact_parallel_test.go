package lake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// TestCompactionGolden compacts lakes of many small files, built from
// seeded random streams, and compares what the compaction folds, removes
// and writes, byte for byte, with testdata/compact/<seed>.golden: the
// output of the sequential implementation the parallel one replaced. The
// streams hold every case compaction distinguishes: an Id in several
// files (re-delivered copy rows), updates, deletes, stale and re-delivered
// changes, a partition file already newer than a change, new Ids with and
// without a small file in their partition, a NULL partition column, rows
// of an older, shorter layout, quoted values with commas and newlines.
func TestCompactionGolden(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			pinSession(t)
			st := newStore(t)
			l, c := goldenCompactionLake(t, st, seed)
			ts := l.State().Tables["account"]
			if len(ts.Changes) < 2 || len(ts.Files) < 8 {
				t.Fatalf("scenario too small: %d files, %d change files", len(ts.Files), len(ts.Changes))
			}
			c.add(time.Minute)
			cp, err := csvOf(l).compact(ctxT(t), ts, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, p := range cp.folded {
				fmt.Fprintf(&b, "folded %s\n", p)
			}
			for _, p := range cp.removed {
				fmt.Fprintf(&b, "removed %s\n", p)
			}
			for _, f := range cp.added {
				data, err := store.ReadAll(ctxT(t), st, f.Path)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(data)) != f.Bytes || int64(strings.Count(string(data), "\n")) < f.Rows {
					t.Fatalf("%s: %d bytes, File says %d bytes, %d rows", f.Path, len(data), f.Bytes, f.Rows)
				}
				fmt.Fprintf(&b, "added %s partition=%s rows=%d written=%s\n%s", f.Path, f.Partition, f.Rows, f.Written.Format(time.RFC3339), data)
			}
			path := filepath.Join("testdata", "compact", fmt.Sprintf("%d.golden", seed))
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Fatalf("compaction differs from %s:\n%s", path, firstDiff(got, string(want)))
			}
		})
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %.200q\nwant %.200q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(g), len(w))
}

// goldenCompactionLake builds the lake of TestCompactionGolden for seed.
func goldenCompactionLake(t *testing.T, st store.Store, seed uint64) (*Lake, *clock) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "golden", Now: c.now, Grace: time.Minute, MaxFileRows: 16, CompactAge: time.Hour, SnapshotsToKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	created := func(n int) time.Time { return time.Date(2020+n%4, time.Month(1+n%12), 1+n%28, n%24, 0, 0, 0, time.UTC) }
	name := func(n int, v int64) string {
		if rng.IntN(3) == 0 {
			return fmt.Sprintf("v%d of %d, \"quoted\"\nsecond line", v, n)
		}
		return fmt.Sprintf("v%d of %d", v, n)
	}
	versions := map[int]int64{}
	upsert := func(n int, v int64) source.Change {
		ch := account(n, v, name(n, v), created(n))
		if n%13 == 0 {
			// A NULL partition column: the row goes to the partition of
			// the time it is written.
			dropValue(&ch, "createdon")
		}
		return ch
	}
	// The initial copy, under a layout without telephone1, in batches that
	// re-deliver some rows of the previous one (same or older version).
	short := accountSchema()
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(short, TableOptions{})}}})
	for batch := range 6 {
		var chs []source.Change
		for n := batch * 10; n < batch*10+12; n++ {
			v := int64(1 + rng.IntN(3))
			if n >= 60 {
				continue
			}
			versions[n] = max(versions[n], v)
			chs = append(chs, upsert(n, v))
		}
		c.add(time.Second)
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
	}
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
	evolved := accountSchema()
	evolved.Columns = append(evolved.Columns, schema.Column{Name: "telephone1", Type: schema.String, MaxLength: 50})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(evolved, TableOptions{})}}})
	for range 4 {
		var chs []source.Change
		for range 15 {
			n := rng.IntN(75)
			switch r := rng.IntN(10); {
			case r == 0 && versions[n] > 1:
				// Stale: older than what the files hold.
				chs = append(chs, upsert(n, versions[n]-1))
			case r == 1 && versions[n] > 0:
				// Re-delivered: the version the files already hold.
				chs = append(chs, upsert(n, versions[n]))
			case r < 4:
				versions[n]++
				chs = append(chs, del("account", n, versions[n]))
			default:
				versions[n]++
				ch := upsert(n, versions[n])
				setValue(&ch, "telephone1", fmt.Sprintf("+1 555 %04d", n))
				chs = append(chs, ch)
			}
		}
		c.add(time.Second)
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
	}
	return l, c
}

// TestCompactionFoldOrder folds change files of several thousand rows each
// (many batches through the fold's pipeline): per Id the highest version
// wins, the later file on a tie, and a stale change loses.
func TestCompactionFoldOrder(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, CompactAge: time.Hour, SnapshotsToKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * foldBatch
	y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	commit := func(v int64, name string, phase Phase) {
		chs := make([]source.Change, n)
		for i := range chs {
			chs[i] = account(i, v, name, y)
		}
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: chs, Phase: phase}}})
	}
	commit(1, "copy", Completed)
	commit(3, "first", "")
	commit(3, "second", "")
	commit(2, "stale", "")
	ts := l.State().Tables["account"]
	cp, err := csvOf(l).compact(ctxT(t), ts, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.folded) != 3 || len(cp.removed) != len(ts.Files) {
		t.Fatalf("folded %d, removed %d of %d files", len(cp.folded), len(cp.removed), len(ts.Files))
	}
	var rows int
	for _, f := range cp.added {
		for _, r := range readRows(t, st, f.Path, ts.Columns) {
			rows++
			if r["name"] != "second" || r[colVersion] != int64(3) {
				t.Fatalf("Id %v: %v v%v, want second v3", r[colID], r["name"], r[colVersion])
			}
		}
	}
	if rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
}

// failingStore fails Create for names with a given prefix after a given
// number of successful ones.
type failingStore struct {
	*local.Store
	prefix string
	left   atomic.Int32
}

var errInjected = errors.New("injected failure")

func (s *failingStore) Create(ctx context.Context, name string) (store.Writer, error) {
	if strings.HasPrefix(name, s.prefix) && s.left.Add(-1) < 0 {
		return nil, errInjected
	}
	return s.Store.Create(ctx, name)
}

// TestCompactionErrors: a malformed record fails the compaction with the
// table, the file and the record number, and a failure in any file leaves
// no new object behind, whichever worker meets it.
func TestCompactionErrors(t *testing.T) {
	tests := []struct {
		name string
		// corrupt rewrites the object at path; empty: none.
		bad  string
		file func(ts *TableState) string
		// creates is how many objects compaction may create before
		// Create fails; negative: never.
		creates int32
		want    string
	}{
		{"quote in a bare field", "a\"b\",c\n", func(ts *TableState) string { return ts.Files[3].Path }, -1, ": record 1: malformed CSV record: quote inside a bare field"},
		{"too few fields", "%s\nx,y\n", func(ts *TableState) string { return ts.Files[5].Path }, -1, ", record 2: 2 fields, fewer than the system columns need"},
		{"bad version", "%s\n%s\n%s\n", func(ts *TableState) string { return ts.Files[0].Path }, -1, ", record 3: versionnumber \"x\""},
		{"bad change file", "%s\n\"open\n", func(ts *TableState) string { return ts.Changes[1].Path }, -1, ": record 2: malformed CSV record: unterminated quote at end of file"},
		{"create fails", "", nil, 3, errInjected.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &failingStore{Store: newStore(t), prefix: dataDir + "account/"}
			st.left.Store(1 << 30)
			c := newClock()
			l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, CompactAge: time.Hour, SnapshotsToKeep: -1})
			if err != nil {
				t.Fatal(err)
			}
			y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
			for b := range 8 {
				var chs []source.Change
				for i := b * 10; i < b*10+10; i++ {
					chs = append(chs, account(i, 1, "copy", y))
				}
				mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: chs}}})
			}
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
			for b := range 2 {
				var chs []source.Change
				for i := b; i < 80; i += 2 {
					chs = append(chs, account(i, 2, "changed", y))
				}
				mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
			}
			ts := l.State().Tables["account"]
			if tt.bad != "" {
				path := tt.file(ts)
				data, err := store.ReadAll(ctxT(t), st, path)
				if err != nil {
					t.Fatal(err)
				}
				good := strings.TrimSuffix(strings.SplitAfter(string(data), "\n")[0], "\n")
				bad := strings.ReplaceAll(tt.bad, "%s", good)
				if tt.name == "bad version" {
					fs, err := splitFields(nil, []byte(good))
					if err != nil {
						t.Fatal(err)
					}
					fs[indexesOf(ts).version] = "x"
					bad = fmt.Sprintf("%s\n%s\n%s\n", good, good, strings.Join(fs, ","))
				}
				w, err := st.Store.Create(ctxT(t), path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte(bad)); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if tt.creates >= 0 {
				st.left.Store(tt.creates)
			}
			before, err := st.List(ctxT(t), dataDir+"account/")
			if err != nil {
				t.Fatal(err)
			}
			_, err = csvOf(l).compact(ctxT(t), ts, math.MaxInt64)
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.bad != "" && !strings.Contains(err.Error(), "table account: "+tt.file(ts)) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
			after, err := st.List(ctxT(t), dataDir+"account/")
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d objects under %saccount/ after a failed compaction, %d before", len(after), dataDir, len(before))
			}
		})
	}
}
