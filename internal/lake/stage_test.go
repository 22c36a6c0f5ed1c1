package lake

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
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
