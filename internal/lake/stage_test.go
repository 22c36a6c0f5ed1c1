package lake

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// stageLake is a lake whose table account is defined and being copied,
// with files of at most maxRows rows.
func stageLake(t *testing.T, maxRows int) (*Lake, *clock) {
	t.Helper()
	c := newClock()
	l, err := Open(ctxT(t), newStore(t), Options{Link: "test", Now: c.now, Grace: -1, MaxFileRows: maxRows})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: &Definition{Source: accountSchema()}}}})
	return l, c
}

func accounts(from, n int, created time.Time) []source.Change {
	out := make([]source.Change, n)
	for i := range out {
		out[i] = account(from+i, 1, "a", created)
	}
	return out
}

func TestStageWritesBoundedFilesAcrossBatches(t *testing.T) {
	l, _ := stageLake(t, 25)
	st, err := l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	y2023 := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	for b := range 4 {
		batch := accounts(b*10, 10, t0)
		batch = append(batch, accounts(1000+b, 1, y2023)...)
		if err := st.Add(ctxT(t), batch); err != nil {
			t.Fatal(err)
		}
		if st.Full() {
			t.Fatalf("Full after batch %d: two partitions open, far from stageOpenFiles", b)
		}
	}
	if n := len(l.State().Tables["account"].Files); n != 0 {
		t.Fatalf("the lake names %d files before the commit", n)
	}
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: st, Cursor: "c4"}}})
	ts := s.Tables["account"]
	var got []string
	for _, f := range ts.Files {
		got = append(got, fmt.Sprintf("%s:%d", f.Partition, f.Rows))
	}
	if want := "2024:20 2024:20 2023:4"; strings.Join(got, " ") != want {
		t.Fatalf("files %v, want %s", got, want)
	}
	if ts.Rows != 44 || ts.Cursor != "c4" {
		t.Fatalf("rows %d cursor %q, want 44 and c4", ts.Rows, ts.Cursor)
	}
	if rows := current(t, l.st, ts); len(rows) != 44 {
		t.Fatalf("%d rows readable, want 44", len(rows))
	}
	if err := st.Add(ctxT(t), accounts(100, 1, t0)); err == nil {
		t.Fatal("a committed stage took more rows")
	}
}

func TestStageDeletesGoToAChangeFile(t *testing.T) {
	l, _ := stageLake(t, 100)
	st, err := l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctxT(t), append(accounts(0, 3, t0), del("account", 1, 2))); err != nil {
		t.Fatal(err)
	}
	ts := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: st}}}).Tables["account"]
	if len(ts.Changes) != 1 || len(ts.Files) != 1 {
		t.Fatalf("%d files, %d change files; want 1 and 1", len(ts.Files), len(ts.Changes))
	}
	if rows := current(t, l.st, ts); len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (one deleted)", len(rows))
	}
}

func TestStageAbortAndStaleCommitLeaveNothing(t *testing.T) {
	l, _ := stageLake(t, 100)
	list := func() int {
		objs, err := l.st.List(ctxT(t), "account/")
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	st, err := l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctxT(t), accounts(0, 3, t0)); err != nil {
		t.Fatal(err)
	}
	st.Abort()
	if n := list(); n != 0 {
		t.Fatalf("%d objects after Abort", n)
	}

	st, err = l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctxT(t), accounts(0, 3, t0)); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "copied afresh"}}})
	_, err = l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Stage: st, Cursor: "c"}}})
	if err == nil || !strings.Contains(err.Error(), "generation 1") {
		t.Fatalf("commit of a stage begun before a reset: %v, want a refusal naming the generation", err)
	}
	if n := list(); n != 0 {
		t.Fatalf("%d objects after a refused stage", n)
	}
	if ts := l.State().Tables["account"]; len(ts.Files) != 0 || ts.Cursor != "" {
		t.Fatalf("refused stage changed the table: %+v", ts)
	}
}

func TestStageNeedsACopyInProgress(t *testing.T) {
	l, _ := stageLake(t, 100)
	if _, err := l.Stage("contact"); err == nil {
		t.Fatal("staged a table the lake does not have")
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
	if _, err := l.Stage("account"); err == nil || !strings.Contains(err.Error(), "initial copy is over") {
		t.Fatalf("staged a completed table: %v", err)
	}
}

func TestStageSplitsABatchLargerThanAFile(t *testing.T) {
	l, _ := stageLake(t, 25)
	st, err := l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctxT(t), accounts(0, 60, t0)); err != nil {
		t.Fatal(err)
	}
	ts := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: st, Cursor: "c"}}}).Tables["account"]
	var got []string
	for _, f := range ts.Files {
		got = append(got, fmt.Sprintf("%s:%d", f.Partition, f.Rows))
	}
	if want := "2024:25 2024:25 2024:10"; strings.Join(got, " ") != want {
		t.Fatalf("files %v, want %s", got, want)
	}
	if rows := current(t, l.st, ts); len(rows) != 60 {
		t.Fatalf("%d rows readable, want 60", len(rows))
	}
}

func TestStageFullWithManyPartitionsOpen(t *testing.T) {
	l, _ := stageLake(t, 100)
	st, err := l.Stage("account")
	if err != nil {
		t.Fatal(err)
	}
	var batch []source.Change
	for y := range stageOpenFiles {
		batch = append(batch, accounts(y, 1, time.Date(2001+y, 1, 1, 0, 0, 0, 0, time.UTC))...)
	}
	if err := st.Add(ctxT(t), batch[:stageOpenFiles-1]); err != nil {
		t.Fatal(err)
	}
	if st.Full() {
		t.Fatalf("Full with %d partitions open", stageOpenFiles-1)
	}
	if err := st.Add(ctxT(t), batch[stageOpenFiles-1:]); err != nil {
		t.Fatal(err)
	}
	if !st.Full() {
		t.Fatalf("not Full with %d partitions open", stageOpenFiles)
	}
	st.Abort()
}

// txLake is a lake with the in-place table account and the append-only
// table contact, both streaming (initial copy done), on a store kept for
// reopening.
func txLake(t *testing.T) (*Lake, *local.Store) {
	t.Helper()
	st := newStore(t)
	l, err := Open(ctxT(t), st, Options{Link: "test", Grace: -1, MaxFileRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	con := accountSchema()
	con.Name = "contact"
	mustCommit(t, l, Tx{Tables: []TableTx{
		{Name: "account", Define: &Definition{Source: accountSchema()}, Changes: accounts(0, 5, t0), Phase: Completed, Cursor: "c0"},
		{Name: "contact", Define: &Definition{Source: con, Options: TableOptions{AppendOnly: true}}, Phase: Completed, Cursor: "c0"},
	}})
	return l, st
}

// contacts are n changes of table contact, in as many partitions.
func contacts(from, n int) []source.Change {
	out := accounts(from, n, t0)
	for i := range out {
		out[i].Table = "contact"
		out[i].Values = append([]any(nil), out[i].Values...)
		out[i].Values[4] = time.Date(2001+i, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return out
}

// TestStageTxOneCommitForATransaction is issue #15's case 10 in the lake: a
// transaction staged in parts across two tables is invisible until one
// commit makes all of it visible; a commit that fails for another table
// leaves the stages whole for the retry without it; more partitions than a
// stage keeps open need no commit in between.
func TestStageTxOneCommitForATransaction(t *testing.T) {
	l, st := txLake(t)
	before := l.State()
	acc, err := l.StageTx("account")
	if err != nil {
		t.Fatal(err)
	}
	con, err := l.StageTx("contact")
	if err != nil {
		t.Fatal(err)
	}
	for part := range 3 {
		updates := accounts(0, 5, t0)
		for i := range updates {
			updates[i].Version = int64(2 + part)
			updates[i].Values = append([]any(nil), updates[i].Values...)
			updates[i].Values[1] = fmt.Sprint("part", part)
		}
		if err := acc.Add(ctxT(t), append(updates, accounts(100+10*part, 10, t0)...)); err != nil {
			t.Fatal(err)
		}
		if err := con.Add(ctxT(t), contacts(10*part, 2*stageOpenFiles)); err != nil {
			t.Fatal(err)
		}
		if acc.Full() || con.Full() {
			t.Fatalf("part %d: a transaction's stage asks for a commit before the transaction ends", part)
		}
		if l.State() != before {
			t.Fatalf("part %d: staging committed something", part)
		}
		if n := len(current(t, st, l.State().Tables["account"])); n != 5 {
			t.Fatalf("part %d: %d account rows readable, want the 5 before the transaction", part, n)
		}
	}
	if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Stage: acc, Cursor: "c1"}, {Name: "contact", Stage: con, Cursor: "c1"}, {Name: "nosuch"}}}); err == nil {
		t.Fatal("commit with a table the lake does not have succeeded")
	}
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: acc, Cursor: "c1"}, {Name: "contact", Stage: con, Cursor: "c1"}}})
	if s.Seq != before.Seq+1 {
		t.Fatalf("the transaction took %d commits, want 1", s.Seq-before.Seq)
	}
	rows := current(t, st, s.Tables["account"])
	if len(rows) != 35 {
		t.Fatalf("%d account rows after the commit, want 35", len(rows))
	}
	if got := rows[guid(0)]["name"]; got != "part2" {
		t.Fatalf("account 0 is %v after the commit, want the transaction's last update part2", got)
	}
	if c := s.Tables["contact"]; c.Rows != 6*stageOpenFiles || c.Cursor != "c1" {
		t.Fatalf("contact: %d rows, cursor %q; want %d and c1", c.Rows, c.Cursor, 6*stageOpenFiles)
	}
	acc.Abort()
	for _, p := range s.Tables["account"].Objects() {
		if _, err := store.ReadAll(ctxT(t), st, p); err != nil {
			t.Fatalf("Abort after the commit deleted %s: %v", p, err)
		}
	}
}

// TestStageTxSchemaChange: a column added in the middle of a transaction
// evolves the stage's layout; the commit adopts it. A type change is a
// *LayoutError, and the lake keeps its layout.
func TestStageTxSchemaChange(t *testing.T) {
	l, st := txLake(t)
	stg, err := l.StageTx("account")
	if err != nil {
		t.Fatal(err)
	}
	if err := stg.Add(ctxT(t), accounts(10, 3, t0)); err != nil {
		t.Fatal(err)
	}
	wide := accountSchema()
	wide.Columns = append(wide.Columns, schema.Column{Name: "extra", Type: schema.String})
	if err := stg.Define(Definition{Source: wide}); err != nil {
		t.Fatal(err)
	}
	later := accounts(20, 2, t0)
	for i := range later {
		setValue(&later[i], "extra", "x")
	}
	if err := stg.Add(ctxT(t), later); err != nil {
		t.Fatal(err)
	}
	if cols := l.State().Tables["account"].Columns; slices.ContainsFunc(cols, func(c Column) bool { return c.Name == "extra" }) {
		t.Fatal("the lake's layout changed before the commit")
	}
	ts := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: stg, Cursor: "c1"}}}).Tables["account"]
	rows := current(t, st, ts)
	if len(rows) != 10 || rows[guid(20)]["extra"] != "x" || rows[guid(10)]["extra"] != nil {
		t.Fatalf("rows after the commit: %d, extra of 20 %v, of 10 %v; want 10, x, nil", len(rows), rows[guid(20)]["extra"], rows[guid(10)]["extra"])
	}
	if !sameSource(ts.Source, wide) {
		t.Fatal("the commit did not adopt the stage's description")
	}

	stg, err = l.StageTx("account")
	if err != nil {
		t.Fatal(err)
	}
	retyped := accountSchema()
	retyped.Columns[3].Type = schema.String
	var le *LayoutError
	if err := stg.Define(Definition{Source: retyped}); !errors.As(err, &le) || le.Table != "account" {
		t.Fatalf("type change in a transaction: %v, want a *LayoutError of account", err)
	}
	stg.Abort()
}

// TestStageTxCrashLeavesOrphansOnly: a writer that dies in the middle of a
// transaction leaves staged objects that no state names; the next Open
// deletes them and the state is the one before the transaction.
func TestStageTxCrashLeavesOrphansOnly(t *testing.T) {
	l, st := txLake(t)
	before := stateJSON(t, l.State())
	for _, name := range []string{"account", "contact"} {
		stg, err := l.StageTx(name)
		if err != nil {
			t.Fatal(err)
		}
		chs := accounts(50, 12, t0)
		if name == "contact" {
			chs = contacts(50, 12)
		}
		if err := stg.Add(ctxT(t), chs); err != nil {
			t.Fatal(err)
		}
		// Its files reach the store (a background publish racing the
		// List of Open below would hide one), then the writer dies: the
		// stage is neither committed nor aborted.
		if err := stg.finish(); err != nil {
			t.Fatal(err)
		}
	}
	l2, err := Open(ctxT(t), st, Options{Link: "test", Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if after := stateJSON(t, l2.State()); after != before {
		t.Fatalf("state changed by an uncommitted transaction:\n%s\nwant\n%s", after, before)
	}
	keep := l2.State().Names()
	objs, err := st.List(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if isOrphanCandidate(o.Name) && !keep[o.Name] {
			t.Fatalf("staged object %s survived Open", o.Name)
		}
	}
}
