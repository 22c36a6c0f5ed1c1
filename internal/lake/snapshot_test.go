package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// TestSnapshotFiles: every published file becomes one snapshot file, shared
// with the live file rather than rewritten, named <name>_<epoch>.csv after
// the published file: 2023_<epoch>.csv, 2023_001_<epoch>.csv, ...
func TestSnapshotFiles(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]int // per initial-copy commit, the createdon year of each row
		want    []string
	}{
		{"one file", [][]int{{2023, 2023}}, []string{"2023_E"}},
		{"one partition, three files", [][]int{{2023}, {2023, 2023}, {2023}}, []string{"2023_E", "2023_001_E", "2023_002_E"}},
		{"two partitions", [][]int{{2024, 2023}, {2024}}, []string{"2023_E", "2024_E", "2024_001_E"}},
		{"empty table", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			c := newClock()
			l := openLake(t, st, c)
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}}})
			n := 0
			for _, years := range tt.batches {
				var chs []source.Change
				for _, y := range years {
					n++
					chs = append(chs, account(n, 1, fmt.Sprint("row ", n), time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC)))
				}
				mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
			}
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
			if err := l.Maintain(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			ts := l.State().Tables["account"]
			if len(ts.Snapshots) != 1 {
				t.Fatalf("%d snapshots, want 1", len(ts.Snapshots))
			}
			snap := ts.Snapshots[0]
			var got []string
			for _, f := range snap.Files {
				got = append(got, strings.Replace(strings.TrimSuffix(strings.TrimPrefix(f.Path, "account/Snapshot/"), ".csv"), fmt.Sprint(snap.Taken.Unix()), "E", 1))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("snapshot files %v, want %v", got, tt.want)
			}
			// A snapshot file is a copy of the live file of its name.
			live := map[string]File{}
			for _, f := range ts.Files {
				live[f.Name] = f
			}
			model, err := store.ReadAll(ctxT(t), st, "model.json")
			if err != nil {
				t.Fatal(err)
			}
			var rows int64
			for _, f := range snap.Files {
				src := live[f.Name]
				if f.Rows != src.Rows || f.Bytes != src.Bytes || !f.Written.Equal(c.now()) {
					t.Errorf("%s: %d rows, %d bytes, written %v; live file %s has %d rows, %d bytes", f.Path, f.Rows, f.Bytes, f.Written, src.Path, src.Rows, src.Bytes)
				}
				fi, err := os.Stat(st.Location(f.Path))
				if err != nil {
					t.Fatal(err)
				}
				si, err := os.Stat(st.Location(src.Path))
				if err != nil {
					t.Fatal(err)
				}
				if !os.SameFile(fi, si) || fi.Size() != f.Bytes {
					t.Errorf("%s is not a copy of %s shared by the local store", f.Path, src.Path)
				}
				if !strings.Contains(string(model), fmt.Sprintf("%q", locationURI(st.Location(f.Path)))) {
					t.Errorf("model.json does not list %s", f.Path)
				}
				rows += f.Rows
			}
			if rows != int64(n) {
				t.Errorf("the snapshot holds %d rows, want %d", rows, n)
			}
		})
	}
}

// TestSnapshotEpoch: the epoch is the first from now, after the previous
// snapshot, at which no name of the snapshot (not only the first of each
// partition) is one the state or its garbage names.
func TestSnapshotEpoch(t *testing.T) {
	e := t0.Unix()
	tests := []struct {
		name     string
		previous int64    // Taken of the previous snapshot, 0: none
		taken    []string // garbage names
		want     int64
	}{
		{"free", 0, nil, e},
		{"after the previous snapshot", e, nil, e + 1},
		{"first name taken", 0, []string{fmt.Sprintf("account/Snapshot/2023_%d.csv", e)}, e + 1},
		{"second name taken", 0, []string{fmt.Sprintf("account/Snapshot/2023_001_%d.csv", e)}, e + 1},
		{"other partition taken", 0, []string{fmt.Sprintf("account/Snapshot/2024_%d.csv", e)}, e + 1},
		{"two seconds taken", 0, []string{fmt.Sprintf("account/Snapshot/2023_001_%d.csv", e), fmt.Sprintf("account/Snapshot/2024_%d.csv", e+1)}, e + 2},
		{"other table", 0, []string{fmt.Sprintf("contact/Snapshot/2023_%d.csv", e)}, e},
		{"a third file not there", 0, []string{fmt.Sprintf("account/Snapshot/2023_002_%d.csv", e)}, e},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			c := newClock()
			l := openLake(t, st, c)
			y := func(year int) time.Time { return time.Date(year, 6, 1, 0, 0, 0, 0, time.UTC) }
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", y(2023)), account(2, 1, "b", y(2024))}}}})
			s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(3, 1, "c", y(2023))}}}})
			ts := *s.Tables["account"]
			if tt.previous != 0 {
				ts.Snapshots = []Snapshot{{Taken: time.Unix(tt.previous, 0)}}
			}
			// Garbage is what a reset or a drop leaves; set it directly.
			ns := *s
			ns.Garbage = slices.Clone(ns.Garbage)
			for _, p := range tt.taken {
				ns.Garbage = append(ns.Garbage, Garbage{Path: p, Since: c.now()})
			}
			l.state.Store(&ns)
			snap, err := csvOf(l).takeSnapshot(ctxT(t), &ts, c.now())
			if err != nil {
				t.Fatal(err)
			}
			if snap.Taken.Unix() != tt.want {
				t.Fatalf("epoch %d, want %d (now %d)", snap.Taken.Unix(), tt.want, e)
			}
			want := []string{"2023_%d", "2023_001_%d", "2024_%d"}
			for i, f := range snap.Files {
				if w := fmt.Sprintf("account/Snapshot/"+want[i]+".csv", tt.want); f.Path != w {
					t.Errorf("file %d: %s, want %s", i, f.Path, w)
				}
			}
		})
	}
}

// failingCopy is a store whose Copy to a name ending in suffix copies, then
// reports a failure (a store may publish and then time out), while armed.
type failingCopy struct {
	store.Store
	suffix string
	armed  atomic.Bool
}

func (f *failingCopy) Copy(ctx context.Context, from, to string) error {
	if err := f.Store.Copy(ctx, from, to); err != nil {
		return err
	}
	if f.armed.Load() && strings.HasSuffix(to, f.suffix) {
		return errors.New("connection reset")
	}
	return nil
}

// TestSnapshotCopyFails: a failed copy fails the snapshot, which leaves no
// snapshot in the state and none of its files in the store; the next round
// takes it.
func TestSnapshotCopyFails(t *testing.T) {
	st := &failingCopy{Store: newStore(t), suffix: "/2023_001_" + fmt.Sprint(newClock().now().Unix()) + ".csv"}
	st.armed.Store(true)
	c := newClock()
	l := openLake(t, st, c)
	y := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", y)}}}})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(2, 1, "b", y)}}}})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(3, 1, "c", y.AddDate(1, 0, 0))}, Phase: Completed}}})
	err := l.Maintain(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "snapshot of table account") || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("Maintain: %v", err)
	}
	if n := len(l.State().Tables["account"].Snapshots); n != 0 {
		t.Fatalf("%d snapshots after a failed copy", n)
	}
	objs, err := st.List(ctxT(t), "account/Snapshot/")
	if err != nil || len(objs) != 0 {
		t.Fatalf("left after a failed snapshot: %v (%v)", objs, err)
	}
	st.armed.Store(false)
	c.add(time.Second)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if len(ts.Snapshots) != 1 || len(ts.Snapshots[0].Files) != 3 {
		t.Fatalf("snapshots after the retry: %+v", ts.Snapshots)
	}
}
