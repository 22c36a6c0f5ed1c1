package lake

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/store"
)

// replaceLake is a lake whose table account holds the rows 0..9, copied and
// streaming, with files of at most maxRows rows.
func replaceLake(t *testing.T, maxRows int) *Lake {
	t.Helper()
	l, _ := stageLake(t, maxRows)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: accounts(0, 10, t0), Cursor: "copied", Phase: Completed}}})
	return l
}

// objects lists the data objects of the lake under _lakelink/data/.
func objects(t *testing.T, st store.Store) []string {
	t.Helper()
	objs, err := st.List(ctxT(t), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

// TestStageReplaceSwapsInOneCommit: a fresh copy built with StageReplace is
// invisible while it is written (the old rows stay, other commits go on,
// the stage's files reach the store as it goes) and replaces the table's
// data in the one commit that carries it, under the layout it began with
// (issue #15 case 3).
func TestStageReplaceSwapsInOneCommit(t *testing.T) {
	l := replaceLake(t, 25)
	old := l.State().Tables["account"]
	oldFiles := old.Objects()
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reinit: "re-initialised on request (--reinit)"}}})
	if ts := s.Tables["account"]; ts.Reinit == "" || ts.Phase != Completed || ts.Rows != 10 || !slices.Equal(ts.Objects(), oldFiles) {
		t.Fatalf("Reinit changed the table's data or phase: %+v", ts)
	}
	wider := accountSchema()
	wider.Columns = append(wider.Columns, schema.Column{Name: "extra", Type: schema.String})
	d := Definition{Source: wider, Options: TableOptions{Granularity: Month}}
	st, err := l.StageReplace("account", d)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 6 {
		if err := st.Add(ctxT(t), accounts(100+b*10, 10, t0)); err != nil {
			t.Fatal(err)
		}
		// Changes of the old generation still commit meanwhile.
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: accounts(b, 1, t0)}}})
		ts := l.State().Tables["account"]
		if rows := current(t, l.st, ts); len(rows) != 10 {
			t.Fatalf("batch %d: readers see %d rows while the copy is staged, want the old 10", b, len(rows))
		}
	}
	keep, n := l.State().Names(), 0
	for _, o := range objects(t, l.st) {
		if !keep[o] {
			n++
		}
	}
	if n < 2 {
		t.Fatalf("%d staged objects in the store before the commit: the stage keeps its rows in memory", n)
	}
	s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "re-initialised on request (--reinit)", Define: &d, Stage: st,
		Cursor: "fresh", Phase: Completed, Reason: "re-initialised on request (--reinit)", CaughtUp: true}}})
	ts := s.Tables["account"]
	if ts.Generation != old.Generation+1 || ts.Phase != Completed || ts.Reinit != "" || ts.Cursor != "fresh" || ts.Rows != 60 || ts.Options.Granularity != Month {
		t.Fatalf("after the swap: generation %d phase %s reinit %q cursor %q rows %d options %+v", ts.Generation, ts.Phase, ts.Reinit, ts.Cursor, ts.Rows, ts.Options)
	}
	if !slices.ContainsFunc(ts.Columns, func(c Column) bool { return c.Name == "extra" }) {
		t.Fatalf("the swap did not adopt the new layout: %+v", ts.Columns)
	}
	rows := current(t, l.st, ts)
	if len(rows) != 60 {
		t.Fatalf("%d rows after the swap, want the copy's 60", len(rows))
	}
	if _, ok := rows[guid(0)]; ok {
		t.Fatal("a row of the old copy survived the swap")
	}
	garbage := map[string]bool{}
	for _, g := range s.Garbage {
		garbage[g.Path] = true
	}
	for _, p := range oldFiles {
		if !garbage[p] {
			t.Fatalf("old file %s is not garbage after the swap", p)
		}
	}
	for _, f := range ts.Files {
		if f.Partition != "2024-03" {
			t.Fatalf("file %s in partition %q, want the copy's Month partition 2024-03", f.Path, f.Partition)
		}
	}
}

// TestStageReplaceRefusals: a replacement commits only onto the table state
// it was begun for.
func TestStageReplaceRefusals(t *testing.T) {
	d := Definition{Source: accountSchema()}
	for _, tc := range []struct {
		name string
		// between runs after the stage is begun; commit is the swap.
		between func(t *testing.T, l *Lake)
		commit  TableTx
		want    string
	}{
		{"reset meanwhile", func(t *testing.T, l *Lake) {
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "another reset"}}})
		}, TableTx{Reset: "swap", Define: &d}, "generation 2"},
		{"other options at the swap", nil, TableTx{Reset: "swap", Define: &Definition{Source: accountSchema(), Options: TableOptions{AppendOnly: true}}}, "options"},
		{"no reset", nil, TableTx{Define: &d}, "phase Completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := replaceLake(t, 100)
			before := objects(t, l.st)
			st, err := l.StageReplace("account", d)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Add(ctxT(t), accounts(100, 5, t0)); err != nil {
				t.Fatal(err)
			}
			if tc.between != nil {
				tc.between(t, l)
			}
			base := l.State().Tables["account"]
			tx := tc.commit
			tx.Name, tx.Stage = "account", st
			if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{tx}}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("commit: %v, want a refusal naming %q", err, tc.want)
			}
			if ts := l.State().Tables["account"]; ts != base {
				t.Fatalf("a refused replacement changed the table: %+v", ts)
			}
			st.Abort()
			if got := objects(t, l.st); len(got) > len(before) {
				t.Fatalf("objects after Abort: %v, before the stage: %v", got, before)
			}
		})
	}
	l := replaceLake(t, 100)
	if _, err := l.StageReplace("contact", Definition{Source: accountSchema()}); err == nil {
		t.Fatal("a replacement of a table the lake does not have")
	}
	if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Reset: "x", Reinit: "y"}}}); err == nil {
		t.Fatal("Reinit with Reset in one TableTx committed")
	}
}

// TestReinitLeavesTheStreamAtItsPosition: a table that stops following the
// stream to be copied afresh keeps the stream's position as its cursor.
func TestReinitLeavesTheStreamAtItsPosition(t *testing.T) {
	l := replaceLake(t, 100)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Follow: true}}, StreamCursor: "p1"})
	mustCommit(t, l, Tx{StreamCursor: "p2"})
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reinit: "cursor expired"}}, StreamCursor: "p3"})
	ts := s.Tables["account"]
	if ts.FollowsStream || ts.Cursor != "p2" || s.Cursor(ts) != "p2" {
		t.Fatalf("follows %v, cursor %q; want its own cursor at p2, the stream's position it was current to", ts.FollowsStream, ts.Cursor)
	}
	if s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Follow: true}}, StreamCursor: "p4"}); s.Tables["account"].FollowsStream {
		t.Fatal("a table being copied afresh follows the stream again")
	}
}

// TestStageReplaceSurvivesAnotherOpen: Open's orphan sweep leaves a running
// replacement's files alone while they are younger than the grace period
// (lakelink's lease keeps a second writer from opening the lake at all).
func TestStageReplaceSurvivesAnotherOpen(t *testing.T) {
	l := replaceLake(t, 3)
	st, err := l.StageReplace("account", Definition{Source: accountSchema()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctxT(t), accounts(100, 10, t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctxT(t), l.st, Options{Link: "test", Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ts := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "swap", Stage: st, Phase: Completed}}}).Tables["account"]
	if rows := current(t, l.st, ts); len(rows) != 10 {
		t.Fatalf("%d rows after the swap, want 10", len(rows))
	}
}
