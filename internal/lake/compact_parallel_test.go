package lake

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
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
			cp, err := l.compact(ctxT(t), ts, true)
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
			delete(ch.Values, "createdon")
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
				ch.Values["telephone1"] = fmt.Sprintf("+1 555 %04d", n)
				chs = append(chs, ch)
			}
		}
		c.add(time.Second)
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
	}
	return l, c
}
