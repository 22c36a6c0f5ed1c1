package lake

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// modelRow is what the model of the table holds for one Id.
type modelRow struct {
	version int64
	deleted bool
	name    string
}

// TestCompactionMatchesModel drives an in-place table with random batches
// (updates, deletes, re-creates, stale and re-delivered changes), random
// Maintain calls and tiny bounds, and checks after every step that the
// merge-on-read view equals a model that applies a change only when its
// version is newer.
func TestCompactionMatchesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			st := newStore(t)
			c := newClock()
			l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: -1, MaxFileRows: 7, CompactRows: 5, CompactAge: time.Hour, SnapshotInterval: time.Minute, SnapshotsToKeep: 2})
			if err != nil {
				t.Fatal(err)
			}
			model := map[string]modelRow{}
			versions := map[int]int64{}
			apply := func(chs []source.Change) {
				for _, ch := range chs {
					m, ok := model[ch.ID]
					if ok && m.version >= ch.Version {
						continue
					}
					name, _ := value(ch, "name").(string)
					model[ch.ID] = modelRow{version: ch.Version, deleted: ch.Deleted, name: name}
				}
			}
			created := func(n int) time.Time { return time.Date(2020+n%3, time.Month(1+n%12), 1, 0, 0, 0, 0, time.UTC) }
			var copyBatch []source.Change
			for n := range 30 {
				versions[n] = 1
				copyBatch = append(copyBatch, account(n, 1, fmt.Sprintf("v1 of %d", n), created(n)))
			}
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: copyBatch, Phase: Completed}}})
			apply(copyBatch)
			var last []source.Change
			for step := range 60 {
				c.add(10 * time.Second)
				var batch []source.Change
				switch rng.IntN(5) {
				case 0:
					// Re-deliver the last batch (at-least-once).
					batch = last
				case 1:
					if err := l.Maintain(ctxT(t)); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
				default:
					for range 1 + rng.IntN(6) {
						n := rng.IntN(40)
						id := guid(n)
						switch r := rng.IntN(10); {
						case r < 2 && versions[n] > 1 && !model[id].deleted:
							// A stale version of a live row.
							v := versions[n] - 1
							batch = append(batch, account(n, v, "stale", created(n)))
						case r < 5:
							versions[n]++
							batch = append(batch, del("account", n, versions[n]))
						default:
							versions[n]++
							batch = append(batch, account(n, versions[n], fmt.Sprintf("v%d of %d\n\"quoted\", 😀\r\n", versions[n], n), created(n)))
						}
					}
					last = batch
				}
				if len(batch) > 0 {
					mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: batch}}})
					apply(batch)
				}
				checkModel(t, st, l.State().Tables["account"], model, 7)
			}
			// A full compaction leaves every Id exactly once in the files.
			c.add(2 * time.Hour)
			if err := l.Maintain(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			ts := l.State().Tables["account"]
			if len(ts.Changes) != 0 {
				t.Fatalf("change files left after a full compaction: %d", len(ts.Changes))
			}
			checkModel(t, st, ts, model, 7)
			seen := map[string]bool{}
			var total int64
			for _, f := range ts.Files {
				for _, r := range readRows(t, st, f.Path, ts.Columns) {
					id := r[colID].(string)
					if seen[id] {
						t.Fatalf("Id %s twice in the files", id)
					}
					seen[id] = true
				}
				total += f.Rows
			}
			if total != ts.Rows {
				t.Fatalf("Rows %d, files hold %d", ts.Rows, total)
			}
		})
	}
}

func checkModel(t *testing.T, st store.Store, ts *TableState, model map[string]modelRow, maxRows int64) {
	t.Helper()
	got := current(t, st, ts)
	for id, m := range model {
		r, ok := got[id]
		if m.deleted {
			if ok {
				t.Fatalf("Id %s: deleted at version %d, lake has %v", id, m.version, r)
			}
			continue
		}
		if !ok || r["name"] != m.name || r[colVersion] != m.version {
			t.Fatalf("Id %s: want %q v%d, lake has %v", id, m.name, m.version, r)
		}
	}
	for id := range got {
		if _, ok := model[id]; !ok {
			t.Fatalf("Id %s in the lake, not in the model", id)
		}
	}
	for _, f := range ts.Files {
		if f.Rows > maxRows {
			t.Fatalf("%s has %d rows, bound %d", f.Path, f.Rows, maxRows)
		}
	}
}

func TestSnapshots(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Second, SnapshotInterval: time.Hour, SnapshotsToKeep: 2})
	if err != nil {
		t.Fatal(err)
	}
	y := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", y), account(2, 1, "b", y.AddDate(1, 0, 0))}}}})
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(l.State().Tables["account"].Snapshots); n != 0 {
		t.Fatalf("snapshot taken during the initial copy: %d", n)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed, Changes: []source.Change{del("account", 2, 2)}}}})
	for i := range 4 {
		if err := l.Maintain(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		ts := l.State().Tables["account"]
		if len(ts.Snapshots) != min(i+1, 2) || len(ts.Changes) != 0 {
			t.Fatalf("round %d: %d snapshots, %d change files", i, len(ts.Snapshots), len(ts.Changes))
		}
		snap := ts.Snapshots[len(ts.Snapshots)-1]
		if len(snap.Files) != 1 || snap.Files[0].Path != fmt.Sprintf("account/Snapshot/2023_%d.csv", snap.Taken.Unix()) {
			t.Fatalf("round %d: snapshot files %+v", i, snap.Files)
		}
		rows := readRows(t, st, snap.Files[0].Path, ts.Columns)
		if len(rows) != 1 || rows[0]["name"] != fmt.Sprintf("a%s", strings.Repeat("!", i)) {
			t.Fatalf("round %d: snapshot rows %v", i, rows)
		}
		model, err := store.ReadAll(ctxT(t), st, "model.json")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(model), st.Location(snap.Files[0].Path)) {
			t.Fatalf("round %d: model.json does not point at the newest snapshot:\n%s", i, model)
		}
		// Without a change no new snapshot is due, however long it waits.
		c.add(2 * time.Hour)
		if err := l.Maintain(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if got := len(l.State().Tables["account"].Snapshots); got != len(ts.Snapshots) {
			t.Fatalf("round %d: a snapshot without changes", i)
		}
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(1, int64(i+2), "a"+strings.Repeat("!", i+1), y)}}}})
	}
}

// TestMergeChangeFiles: many one-row commits between compactions get their
// change files concatenated, in order, without touching the table.
func TestMergeChangeFiles(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, CompactAge: time.Hour, SnapshotsToKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "v1", y), account(2, 1, "two", y)}}}})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
	model := map[string]modelRow{guid(1): {1, false, "v1"}, guid(2): {1, false, "two"}}
	for v := int64(2); v < 2+changeFilesToMerge+3; v++ {
		c.add(time.Second)
		ch := account(1, v, fmt.Sprint("v", v), y)
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{ch}}}})
		model[guid(1)] = modelRow{v, false, value(ch, "name").(string)}
	}
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{del("account", 2, 2)}}}})
	model[guid(2)] = modelRow{2, true, ""}
	files := l.State().Tables["account"].Files
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if len(ts.Changes) != 1 || ts.Changes[0].Rows != changeFilesToMerge+4 || !ts.Changes[0].Written.Equal(t0.Add(time.Second)) {
		t.Fatalf("change files after merging: %+v", ts.Changes)
	}
	if fmt.Sprint(ts.Files) != fmt.Sprint(files) {
		t.Fatal("merging change files rewrote partition files")
	}
	checkModel(t, st, ts, model, 500_000)
}

// TestOddValuesThroughCompaction: values that stress the CSV (1 MB strings
// with quotes and newlines, NULLs, extreme dates and decimals) come out of
// a commit, a compaction and a snapshot unchanged.
func TestOddValuesThroughCompaction(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("a\"b,\r\n😀", 1<<20/10)
	first := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)
	odd := []source.Change{
		account(1, 1, big, first),
		account(2, 1, "", last),
		{Table: "account", ID: guid(3), Version: 1, Columns: []string{"accountid"}, Values: []any{guid(3)}},
	}
	setValue(&odd[0], "revenue", "-99999999999999999999999999999999999999")
	setValue(&odd[1], "revenue", "0.0000000000000000000000000000000000001")
	setValue(&odd[1], "modifiedon", last)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: odd[:1], Phase: Completed}}})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: odd[1:]}}})
	c.add(time.Hour)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if len(ts.Changes) != 0 || len(ts.Snapshots) != 1 {
		t.Fatalf("%d change files, %d snapshots", len(ts.Changes), len(ts.Snapshots))
	}
	got := current(t, st, ts)
	var snap []row
	for _, f := range ts.Snapshots[0].Files {
		snap = append(snap, readRows(t, st, f.Path, ts.Columns)...)
	}
	if len(snap) != 3 || len(got) != 3 {
		t.Fatalf("%d rows, %d in the snapshot", len(got), len(snap))
	}
	for _, ch := range odd {
		r := got[ch.ID]
		for _, col := range []string{"name", "revenue", "createdon"} {
			want := value(ch, col)
			if tm, ok := want.(time.Time); ok {
				if !r[col].(time.Time).Equal(tm) {
					t.Errorf("Id %s %s = %v, want %v", ch.ID, col, r[col], tm)
				}
				continue
			}
			if r[col] != want {
				t.Errorf("Id %s %s = %.40q, want %.40q", ch.ID, col, r[col], want)
			}
		}
	}
}

// TestSnapshotNameAfterReset: a table reset within the second of its last
// snapshot must not write a snapshot under the name of one its garbage
// list will delete.
func TestSnapshotNameAfterReset(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", y)}, Phase: Completed}}})
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	old := l.State().Tables["account"].Snapshots[0].Files[0].Path
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "test", Changes: []source.Change{account(1, 2, "b", y)}, Phase: Completed}}})
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if len(ts.Snapshots) != 1 || ts.Snapshots[0].Files[0].Path == old {
		t.Fatalf("snapshot after the reset: %+v (old one %s)", ts.Snapshots, old)
	}
	c.add(2 * time.Minute)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rows := readRows(t, st, l.State().Tables["account"].Snapshots[0].Files[0].Path, ts.Columns)
	if len(rows) != 1 || rows[0]["name"] != "b" {
		t.Fatalf("snapshot rows %v", rows)
	}
}
