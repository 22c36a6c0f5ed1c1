package lake

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

func truncateAt(table string, version int64) source.Change {
	return source.Change{Table: table, Truncate: true, Version: version}
}

// liveNames maps the Ids the merge-on-read view holds to their names.
func liveNames(t *testing.T, st store.Store, ts *TableState) map[string]any {
	t.Helper()
	out := map[string]any{}
	for id, r := range current(t, st, ts) {
		out[id] = r["name"]
	}
	return out
}

// TestTruncate is issue #15's case 4 in the lake: a truncate empties the
// table where it stands in a commit's changes, whatever the table's mode;
// the table stays Completed at its cursor with its layout; readers of the
// older state can still read its files for the grace period.
func TestTruncate(t *testing.T) {
	y := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		opts        TableOptions
		incremental bool
	}{
		{"in place", TableOptions{}, false},
		{"append-only", TableOptions{AppendOnly: true}, false},
		{"incremental folders", TableOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			c := newClock()
			l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, Incremental: Incremental{Enabled: tt.incremental}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), tt.opts),
				Changes: []source.Change{account(1, 1, "one", y), account(2, 1, "two", y), account(3, 1, "three", y)}, Phase: Completed, Cursor: "c1"}}})
			c.add(time.Second)
			before := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Cursor: "c2", Changes: []source.Change{account(1, 2, "one v2", y), del("account", 2, 2)}}}})
			old := before.Tables["account"].Objects()
			c.add(time.Second)
			s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Cursor: "c3", CaughtUp: true, Changes: []source.Change{
				account(4, 10, "void", y), truncateAt("account", 11), account(5, 12, "five", y), account(6, 13, "six", y), del("account", 6, 14),
			}}}})
			ts := s.Tables["account"]
			if got := liveNames(t, st, ts); !maps.Equal(got, map[string]any{guid(5): "five"}) {
				t.Fatalf("rows after the truncate: %v, want only five", got)
			}
			if ts.Phase != Completed || ts.Cursor != "c3" || !slices.Equal(ts.Columns, before.Tables["account"].Columns) || ts.InitialSyncCompleted.IsZero() {
				t.Fatalf("table after the truncate: phase %s, cursor %s, columns %v", ts.Phase, ts.Cursor, ts.Columns)
			}
			// Readers of the older state still read what it names.
			if got := liveNames(t, st, before.Tables["account"]); len(got) != 2 {
				t.Fatalf("the state before the truncate reads %v", got)
			}
			if !ts.Options.AppendOnly {
				if ts.Generation != before.Tables["account"].Generation+1 || ts.Rows != 0 {
					t.Fatalf("in place: generation %d, rows %d; want the next generation and 0 rows until compaction", ts.Generation, ts.Rows)
				}
				if slices.ContainsFunc(ts.Objects(), func(p string) bool { return slices.Contains(old, p) }) {
					t.Fatal("in place: the truncated table still names its old files")
				}
				garbage := map[string]bool{}
				for _, g := range s.Garbage {
					garbage[g.Path] = true
				}
				for _, p := range old {
					if !garbage[p] {
						t.Fatalf("in place: old file %s is not garbage", p)
					}
				}
				if err := l.Maintain(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				// The published file of the old rows holds none of them
				// now (Maintain may have compacted the rows after the
				// truncate into it): consumers follow it by name.
				if b, err := store.ReadAll(ctxT(t), st, "account/2023.csv"); err != nil || bytes.Contains(b, []byte(`"three"`)) || bytes.Contains(b, []byte(`"one v2"`)) {
					t.Fatalf("in place: published account/2023.csv after the truncate: %q, %v; want none of the truncated rows", b, err)
				}
				c.add(2 * time.Minute)
				if err := l.Maintain(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				if _, err := store.ReadAll(ctxT(t), st, old[0]); !errors.Is(err, store.ErrNotExist) {
					t.Fatalf("in place: old file not deleted after the grace period: %v", err)
				}
				return
			}
			// Append-only: a history; every record live at the truncate
			// gets a delete with its version, nothing is dropped.
			if slices.ContainsFunc(s.Garbage, func(g Garbage) bool { return slices.Contains(old, g.Path) }) || ts.Generation != before.Tables["account"].Generation {
				t.Fatal("append-only: the truncate dropped files or moved the generation")
			}
			var deletes []string
			for _, f := range ts.Files {
				for _, r := range readRows(t, st, f.Path, ts.Columns) {
					if r[colIsDelete] == true && r[colVersion] == int64(11) {
						deletes = append(deletes, r[colID].(string))
					}
				}
			}
			slices.Sort(deletes)
			if want := []string{guid(1), guid(3), guid(4)}; !slices.Equal(deletes, want) {
				t.Fatalf("append-only: deletes at the truncate %v, want %v", deletes, want)
			}
			if ts.Rows != 3+2+7 {
				t.Fatalf("append-only: %d rows, want every change row (12)", ts.Rows)
			}
		})
	}
}

// TestTruncateRefusesStaleCompaction: a compaction computed before a
// truncate must not bring the truncated rows back.
func TestTruncateRefusesStaleCompaction(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	y := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "one", y)}, Phase: Completed}}})
	before := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(2, 2, "two", y)}}}})
	comp, err := csvOf(l).compact(ctxT(t), before.Tables["account"], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	after := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{truncateAt("account", 3)}}}})
	if _, _, ok := comp.Apply(after.Tables["account"], c.now()); ok {
		t.Fatal("a compaction of the table before its truncate applies to it after")
	}
	stg, err := l.StageTx("account")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{truncateAt("account", 4)}, Stage: stg}}}); err == nil {
		t.Fatal("a truncate in Changes before a Stage was accepted")
	}
}

// TestStageTxTruncate is issue #15's case 4 in a staged transaction (case
// 10): a truncate in any part empties the table in the transaction's one
// commit; rows staged before it are void (their objects deleted at once),
// rows after it stay, in order; until the commit readers see the table as
// it was. account is in place, contact append-only.
func TestStageTxTruncate(t *testing.T) {
	for _, table := range []string{"account", "contact"} {
		t.Run(table, func(t *testing.T) {
			l, st := txLake(t)
			// own are n changes of table, in as many partitions, at version v.
			own := func(from, n int, v int64) []source.Change {
				ch := contacts(from, n)
				for i := range ch {
					ch[i].Table, ch[i].Version = table, v
				}
				return ch
			}
			if table == "contact" {
				mustCommit(t, l, Tx{Tables: []TableTx{{Name: table, Changes: own(0, 5, 1)}}})
			}
			before := l.State()
			stg, err := l.StageTx(table)
			if err != nil {
				t.Fatal(err)
			}
			parts := [][]source.Change{
				own(10, 6, 2),
				append(own(20, 2, 3), truncateAt(table, 4)),
				append(own(5, 2, 5), own(30, 1, 6)...),
			}
			for _, p := range parts {
				if err := stg.Add(ctxT(t), p); err != nil {
					t.Fatal(err)
				}
				if l.State() != before || len(liveNames(t, st, l.State().Tables[table])) != 5 {
					t.Fatal("the stage changed what readers see before its commit")
				}
			}
			s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: table, Stage: stg, Cursor: "c1"}}})
			if s.Seq != before.Seq+1 {
				t.Fatalf("the transaction took %d commits", s.Seq-before.Seq)
			}
			got := slices.Sorted(maps.Keys(liveNames(t, st, s.Tables[table])))
			if want := []string{guid(5), guid(6), guid(30)}; !slices.Equal(got, want) {
				t.Fatalf("rows after the transaction: %v, want %v", got, want)
			}
			if ts := s.Tables[table]; ts.Phase != Completed || ts.Cursor != "c1" {
				t.Fatalf("table after the transaction: %+v", ts)
			}
			named := map[string]bool{}
			for _, ts := range []*TableState{before.Tables[table], s.Tables[table]} {
				for _, p := range ts.Objects() {
					named[p] = true
				}
			}
			for _, dir := range []string{dataDir + table + "/", changesDir + table + "/"} {
				objs, err := st.List(ctxT(t), dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					if !named[o.Name] {
						t.Errorf("object %s is named by no state: rows staged before the truncate were left behind", o.Name)
					}
				}
			}
		})
	}
}
