package lake

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

func openLake(t *testing.T, st store.Store, c *clock) *Lake {
	t.Helper()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func define(s *schema.Table, o TableOptions) *Definition { return &Definition{Source: s, Options: o} }

func TestCommitInPlace(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	y23 := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	y24 := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}),
		Changes: []source.Change{account(1, 1, "one", y23), account(2, 1, "two", y24), account(3, 1, "three", y24)}, Cursor: "c1"}}})
	ts := s.Tables["account"]
	if ts.Phase != InProgress || ts.Rows != 3 || len(ts.Files) != 2 || len(ts.Changes) != 0 {
		t.Fatalf("after the first copy batch: %+v", ts)
	}
	for _, f := range ts.Files {
		if !strings.HasPrefix(f.Path, dataDir+"account/"+f.Partition+"_1_") || f.Name != f.Partition {
			t.Errorf("file %s (published as %s) is not named for partition %s, generation 1", f.Path, f.Name, f.Partition)
		}
	}
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed, Cursor: "d1", CaughtUp: true}}})
	c.add(time.Second)
	s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Cursor: "d2", Changes: []source.Change{
		account(1, 2, "one v2", y23), del("account", 2, 2), account(3, 1, "three", y24), account(4, 1, "four", y24),
	}}}})
	c.add(time.Second)
	// A re-delivered older version must not change the outcome.
	s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(1, 1, "one", y23), account(2, 1, "two", y24)}}}})
	ts = s.Tables["account"]
	if len(ts.Changes) != 2 || !strings.HasPrefix(ts.Changes[0].Path, "_lakelink/changes/account/") {
		t.Fatalf("in-place changes after the copy must go to one change file: %+v", ts.Changes)
	}
	if ts.Cursor != "d2" || ts.Rows != 3 || ts.Phase != Completed || !ts.InitialSyncCompleted.Equal(t0.Add(time.Second)) || !ts.LastSynchronized.Equal(t0.Add(time.Second)) {
		t.Fatalf("table state: %+v", ts)
	}
	got := current(t, st, ts)
	want := map[string]string{guid(1): "one v2", guid(3): "three", guid(4): "four"}
	if len(got) != len(want) {
		t.Fatalf("current rows %v, want %v", got, want)
	}
	for id, name := range want {
		if got[id]["name"] != name {
			t.Errorf("Id %s: name %v, want %s", id, got[id]["name"], name)
		}
	}
	readBack(t, st, l.State())
}

func TestCommitAppendOnly(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	created := time.Date(2022, 12, 31, 23, 0, 0, 0, time.UTC)
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{AppendOnly: true, Granularity: Month}),
		Changes: []source.Change{account(1, 1, "one", created)}, Phase: Completed}}})
	s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(1, 2, "one v2", created), del("account", 1, 3)}}}})
	ts := s.Tables["account"]
	if ts.Rows != 3 || len(ts.Changes) != 0 {
		t.Fatalf("append-only state: %+v", ts)
	}
	parts := map[string]int{}
	var rows []row
	for _, f := range ts.Files {
		parts[f.Partition]++
		rows = append(rows, readRows(t, st, f.Path, ts.Columns)...)
	}
	// The delete has no createdon: it lands in the fixed partition.
	if parts["2022-12"] != 2 || parts[NoPartition] != 1 {
		t.Fatalf("partitions %v", parts)
	}
	// Files are in partition order; the versions tell the rows apart.
	slices.SortFunc(rows, func(a, b row) int { return int(a[colVersion].(int64) - b[colVersion].(int64)) })
	if len(rows) != 3 || rows[2][colIsDelete] != true || rows[2]["name"] != nil || rows[2][colVersion] != int64(3) {
		t.Fatalf("rows %v", rows)
	}
}

func TestCommitErrors(t *testing.T) {
	y := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	bad := account(9, 1, "x", y)
	setValue(&bad, "statecode", "0")
	unknown := account(9, 1, "x", y)
	setValue(&unknown, "nocolumn", "x")
	retyped := accountSchema()
	retyped.Columns[1].Type = schema.Int64
	tests := []struct {
		name string
		tx   TableTx
		want string
	}{
		{"undefined table", TableTx{Name: "contact", Changes: []source.Change{bad}}, "must carry Define"},
		{"value type", TableTx{Name: "account", Changes: []source.Change{bad}}, "column statecode, Id " + guid(9)},
		{"unknown column", TableTx{Name: "account", Changes: []source.Change{unknown}}, "column nocolumn"},
		{"type change", TableTx{Name: "account", Define: define(retyped, TableOptions{})}, "type changed"},
		{"options change", TableTx{Name: "account", Define: define(accountSchema(), TableOptions{AppendOnly: true})}, "options changed"},
		{"bad name", TableTx{Name: "../x", Define: define(accountSchema(), TableOptions{})}, "cannot name a lake folder"},
		{"empty id", TableTx{Name: "account", Changes: []source.Change{{Version: 1}}}, "empty Id"},
	}
	st := newStore(t)
	l := openLake(t, st, newClock())
	other := accountSchema()
	other.Name = "other"
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}, {Name: "other", Define: define(other, TableOptions{})}}})
	good := account(1, 1, "ok", y)
	good.Table = "other"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := l.State().Seq
			_, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "other", Changes: []source.Change{good}}, tt.tx}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
			if l.State().Seq != before {
				t.Fatal("a failed commit changed the state")
			}
		})
	}
	// Nothing a failed commit wrote stays behind.
	objs, err := st.List(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if n := countData(objs); n != 0 {
		t.Fatalf("failed commits left %v", objs)
	}
}

func TestConflict(t *testing.T) {
	st := newStore(t)
	c := newClock()
	a := openLake(t, st, c)
	b := openLake(t, st, c)
	mustCommit(t, a, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}}})
	_, err := b.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}),
		Changes: []source.Change{account(1, 1, "x", t0)}}}})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Seq != 1 || !strings.Contains(err.Error(), "another lakelink sync is writing this lake") {
		t.Fatalf("want a ConflictError for seq 1, got %v", err)
	}
	if objs, _ := st.List(ctxT(t), ""); countData(objs) != 0 {
		t.Fatalf("the losing writer left %v", objs)
	}
}

// withCheckpoints sets the checkpoint schedule (checkpointEvery,
// checkpointMost, keepCommits) for the test t and restores it after.
func withCheckpoints(t *testing.T, every, most, keep int64) {
	e, m, k := checkpointEvery, checkpointMost, keepCommits
	t.Cleanup(func() { checkpointEvery, checkpointMost, keepCommits = e, m, k })
	checkpointEvery, checkpointMost, keepCommits = every, most, keep
}

// TestCheckpointsFollowTheLog checks that checkpoints of a lake of many
// tables cost no more bytes than the records of commits that touch one
// table each: a one-row commit's cost does not grow with the table count.
func TestCheckpointsFollowTheLog(t *testing.T) {
	withCheckpoints(t, 5, 1000, 100000)
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	var tx Tx
	for i := range 200 {
		s := accountSchema()
		s.Name = fmt.Sprintf("t%03d", i)
		tx.Tables = append(tx.Tables, TableTx{Name: s.Name, Define: define(s, TableOptions{}), Phase: Completed})
	}
	mustCommit(t, l, tx)
	for i := range 300 {
		c.add(time.Second)
		ch := account(i, 1, "n", t0)
		ch.Table = "t007"
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "t007", Changes: []source.Change{ch}}}})
	}
	sum := func(dir string) (total, largest int64, n int) {
		objs, err := st.List(ctxT(t), dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			total, largest, n = total+o.Size, max(largest, o.Size), n+1
		}
		return
	}
	cp, cpMax, cps := sum(checkpointDir)
	logs, _, _ := sum(logDir)
	if cps == 0 || cp > logs+cpMax {
		t.Fatalf("%d checkpoints of %d bytes for %d bytes of commit records: checkpoints must cost at most the log plus one", cps, cp, logs)
	}
	readBack(t, st, l.State())
}

func TestCheckpointsAndPruning(t *testing.T) {
	withCheckpoints(t, 3, 3, 4)
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}})
	for i := range 20 {
		c.add(time.Second)
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(i, 1, "n", t0)}}}})
	}
	if read := readBack(t, st, l.State()); read.Seq != 21 {
		t.Fatalf("ReadState after checkpoints: seq %d, want 21", read.Seq)
	}
	logs, _ := st.List(ctxT(t), logDir)
	cps, _ := st.List(ctxT(t), checkpointDir)
	if len(logs) > int(keepCommits+checkpointEvery+1) || len(cps) == 0 || len(cps) > 3 {
		t.Fatalf("pruning kept %d records and %d checkpoints", len(logs), len(cps))
	}
	// A reopened writer continues from the checkpointed state.
	l2 := openLake(t, st, c)
	if l2.State().Seq != 21 {
		t.Fatalf("reopened at %d", l2.State().Seq)
	}
}

func TestGarbageAndOrphans(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	y := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", y)}}}})
	old := s.Tables["account"].Files[0].Path
	s = mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "cursor expired", Changes: []source.Change{account(1, 2, "b", y)}}}})
	ts := s.Tables["account"]
	if ts.Generation != 2 || len(ts.Files) != 1 || ts.Reason != "cursor expired" || len(s.Garbage) != 1 || s.Garbage[0].Path != old {
		t.Fatalf("after reset: %+v garbage %+v", ts, s.Garbage)
	}
	// Within the grace period the old file stays for readers of the old state.
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadAll(ctxT(t), st, old); err != nil {
		t.Fatalf("garbage deleted before its grace period: %v", err)
	}
	c.add(2 * time.Minute)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadAll(ctxT(t), st, old); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("garbage not deleted after its grace period: %v", err)
	}
	if len(l.State().Garbage) != 0 {
		t.Fatalf("garbage list not emptied: %+v", l.State().Garbage)
	}
	// Orphans: written by a writer that died before its commit record.
	for _, name := range []string{"account/2023_2_deadbeef_1.csv", dataDir + "account/2023_2_deadbeef_3.csv", "_lakelink/changes/account/2_deadbeef_2.csv", "account/Snapshot/2023_1700000000.csv", "account/Snapshot/2023_1700000000_2.csv"} {
		if err := store.Put(ctxT(t), st, name, []byte("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Put(ctxT(t), st, "account/notes.txt", []byte("user file")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctxT(t), st, Options{Link: "test", Grace: -1}); err != nil {
		t.Fatal(err)
	}
	objs, _ := st.List(ctxT(t), "")
	var left []string
	for _, o := range objs {
		if strings.HasSuffix(o.Name, ".csv") && !strings.HasPrefix(o.Name, "OptionsetMetadata/") && !publishedRE.MatchString(o.Name) {
			left = append(left, o.Name)
		}
	}
	if len(left) != 1 || left[0] != ts.Files[0].Path {
		t.Fatalf("after Open: data objects %v, want only %s", left, ts.Files[0].Path)
	}
	if _, err := store.ReadAll(ctxT(t), st, "account/notes.txt"); err != nil {
		t.Fatalf("Open deleted a file lakelink did not write: %v", err)
	}
}

func TestOpenOtherLink(t *testing.T) {
	st := newStore(t)
	l := openLake(t, st, newClock())
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}}})
	if _, err := Open(ctxT(t), st, Options{Link: "other"}); err == nil || !strings.Contains(err.Error(), `belongs to link "test"`) {
		t.Fatalf("want a wrong-link error, got %v", err)
	}
}

// countData counts data objects (partition and change files).
func countData(objs []store.Object) int {
	n := 0
	for _, o := range objs {
		if isOrphanCandidate(o.Name) {
			n++
		}
	}
	return n
}

func TestReader(t *testing.T) {
	withCheckpoints(t, 3, 3, 4)
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	r := NewReader(st)
	s, err := r.State(ctxT(t))
	if err != nil || s.Seq != 0 {
		t.Fatalf("empty lake: %v %v", s, err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}})
	for i := range 30 {
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(i, 1, "n", t0)}}}})
		// Read after some commits only, so that the reader falls behind
		// the pruning at times.
		if i%2 == 0 || i > 20 {
			continue
		}
		s, err := r.State(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if stateJSON(t, s) != stateJSON(t, l.State()) {
			t.Fatalf("after commit %d: the reader's state differs", s.Seq)
		}
	}
	s, err = r.State(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if stateJSON(t, s) != stateJSON(t, l.State()) {
		t.Fatalf("a reader that fell behind the pruning differs: seq %d, want %d", s.Seq, l.State().Seq)
	}
}

func TestTableOptions(t *testing.T) {
	forced := accountSchema()
	forced.AppendOnly = true
	tests := []struct {
		name        string
		src         *schema.Table
		opts        TableOptions
		incremental bool
		want        TableOptions
	}{
		{"defaults", accountSchema(), TableOptions{}, false, TableOptions{Granularity: Year}},
		{"month", accountSchema(), TableOptions{Granularity: Month}, false, TableOptions{Granularity: Month}},
		{"source forces append-only", forced, TableOptions{}, false, TableOptions{AppendOnly: true, Granularity: Year}},
		{"incremental forces append-only", accountSchema(), TableOptions{}, true, TableOptions{AppendOnly: true, Granularity: Year}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			l, err := Open(ctxT(t), st, Options{Now: newClock().now, Incremental: Incremental{Enabled: tt.incremental}})
			if err != nil {
				t.Fatal(err)
			}
			d := Definition{Source: tt.src, Options: tt.opts}
			if got := l.TableOptions(d); got != tt.want {
				t.Fatalf("TableOptions = %+v, want %+v", got, tt.want)
			}
			s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: &d}}})
			if s.Tables["account"].Options != tt.want {
				t.Fatalf("state options %+v, want %+v", s.Tables["account"].Options, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name      string
		rows      []string
		maxRows   int
		maxBytes  int
		wantFiles string
	}{
		{"one", []string{"a\n"}, 10, 100, "a\n"},
		{"by rows", []string{"a\n", "b\n", "c\n"}, 2, 100, "a\nb\n|c\n"},
		{"by bytes", []string{"aaaa\n", "bb\n", "c\n"}, 10, 6, "aaaa\n|bb\nc\n"},
		{"row larger than the bound", []string{"aaaaaaaa\n", "b\n"}, 10, 4, "aaaaaaaa\n|b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b partBuf
			for _, r := range tt.rows {
				b.data = append(b.data, r...)
				b.endRow()
			}
			var got []string
			var rows int64
			for _, c := range b.split(tt.maxRows, tt.maxBytes) {
				got = append(got, string(c.data))
				rows += c.rows
			}
			if strings.Join(got, "|") != tt.wantFiles || rows != int64(len(tt.rows)) {
				t.Fatalf("split = %q (%d rows), want %q", got, rows, tt.wantFiles)
			}
		})
	}
}

func TestSessionUnique(t *testing.T) {
	old := newSession
	defer func() { newSession = old }()
	draws := []string{"aaaa", "aaaa", "bbbb"}
	newSession = func() string { s := draws[0]; draws = draws[1:]; return s }
	st := newStore(t)
	if err := store.Put(ctxT(t), st, "account/2024_1_aaaa_1.csv", []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctxT(t), st, Options{Now: newClock().now})
	if err != nil {
		t.Fatal(err)
	}
	if l.session != "bbbb" {
		t.Fatalf("session %q: a name in use was not avoided", l.session)
	}
}

// TestUnknownColumn: a value of a column the layout lacks fails the commit,
// even on a delete and ahead of a bad value of a known column; values of
// versionnumber and of columns the layout has (system or dropped) pass. A
// column named twice fails too, as do Values and Columns of different
// lengths (naming the table only); a delete without values passes.
func TestUnknownColumn(t *testing.T) {
	cols, err := newLayout(accountSchema())
	if err != nil {
		t.Fatal(err)
	}
	enc := newRowEncoder("account", cols, t0)
	for _, tc := range []struct {
		name    string
		change  func() source.Change
		wantCol string
	}{
		{"known", func() source.Change { return account(1, 1, "a", t0) }, ""},
		{"versionnumber and system names", func() source.Change {
			ch := account(1, 1, "a", t0)
			setValue(&ch, "versionnumber", int64(3))
			setValue(&ch, "IsDelete", true)
			return ch
		}, ""},
		{"unknown", func() source.Change {
			ch := account(1, 1, "a", t0)
			setValue(&ch, "nope", "x")
			return ch
		}, "nope"},
		{"unknown on a delete", func() source.Change {
			ch := del("account", 1, 2)
			ch.Columns, ch.Values = []string{"nope"}, []any{"x"}
			return ch
		}, "nope"},
		{"unknown before a bad value", func() source.Change {
			ch := account(1, 1, "a", t0)
			setValue(&ch, "nope", "x")
			setValue(&ch, "statecode", "not a number")
			return ch
		}, "nope"},
		{"bad value", func() source.Change {
			ch := account(1, 1, "a", t0)
			setValue(&ch, "statecode", "not a number")
			return ch
		}, "statecode"},
		{"a delete without values", func() source.Change {
			ch := del("account", 1, 2)
			ch.Columns = []string{"nope"}
			return ch
		}, ""},
		{"named twice", func() source.Change {
			ch := account(1, 1, "a", t0)
			ch.Columns = append(slices.Clip(ch.Columns), "name")
			ch.Values = append(ch.Values, "b")
			return ch
		}, "name"},
		{"more values than columns", func() source.Change {
			ch := account(1, 1, "a", t0)
			ch.Values = append(ch.Values, "x")
			return ch
		}, "-"},
		{"fewer values than columns", func() source.Change {
			ch := account(1, 1, "a", t0)
			ch.Values = ch.Values[:2]
			return ch
		}, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := tc.change()
			_, err := encodeRow(enc, &ch)
			var ve *ValueError
			switch {
			case tc.wantCol == "" && err != nil:
				t.Fatalf("want no error, got %v", err)
			case tc.wantCol == "-" && (!errors.As(err, &ve) || ve.Column != "" || ve.Table != "account"):
				t.Fatalf("want a ValueError of table account and no column, got %v", err)
			case tc.wantCol != "" && tc.wantCol != "-" && (!errors.As(err, &ve) || ve.Column != tc.wantCol):
				t.Fatalf("want a ValueError of column %s, got %v", tc.wantCol, err)
			}
		})
	}
}

// TestColumnsMapping: an encoder reuses the mapping of a Columns slice
// only for that same slice (same array and length); changes alternating
// between slices that order, share or leave out columns differently encode
// as they do alone.
func TestColumnsMapping(t *testing.T) {
	cols, err := newLayout(accountSchema())
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	reversed := slices.Clone(accountCols)
	slices.Reverse(reversed)
	// prefix shares the array of accountCols with a different length.
	prefix := accountCols[:3]
	var chs []source.Change
	for n := range 12 {
		ch := account(n, 1, fmt.Sprint("name ", n), created)
		switch n % 4 {
		case 1:
			vals := slices.Clone(ch.Values)
			slices.Reverse(vals)
			ch.Columns, ch.Values = reversed, vals
		case 2:
			ch.Columns, ch.Values = prefix, ch.Values[:3]
		case 3:
			ch.Columns = slices.Clone(accountCols)
		}
		chs = append(chs, ch)
	}
	enc := newRowEncoder("account", cols, t0)
	for i := range chs {
		m, err := enc.resolve(&chs[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := enc.encode(nil, &chs[i], m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encodeRow(newRowEncoder("account", cols, t0), &chs[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("change %d: %q, want %q", i, got, want)
		}
		if !bytes.Contains(got, []byte(fmt.Sprint("name ", i))) {
			t.Errorf("change %d: %q lacks its name", i, got)
		}
	}
	// A column of the layout that Columns leaves out is NULL: the prefix
	// has no statecode, createdon or modifiedon.
	nulls := account(2, 1, "name 2", created)
	for _, c := range []string{"statecode", "createdon", "modifiedon"} {
		setValue(&nulls, c, nil)
	}
	want, err := encodeRow(newRowEncoder("account", cols, t0), &nulls)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeRow(newRowEncoder("account", cols, t0), &chs[2])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the change without statecode encodes as %q, want %q", got, want)
	}
}

func TestPartitioner(t *testing.T) {
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	est := time.FixedZone("", -5*3600)
	cols, err := newLayout(accountSchema())
	if err != nil {
		t.Fatal(err)
	}
	created := []string{"createdon"}
	at2 := func(y int, m time.Month) source.Change {
		return source.Change{ID: "1", Columns: created, Values: []any{time.Date(y, m, 10, 0, 0, 0, 0, time.UTC)}}
	}
	for _, tc := range []struct {
		name    string
		g       Granularity
		col     string
		changes []source.Change
		want    string
	}{
		{"no column", Year, "", []source.Change{at2(2020, 1)}, "1"},
		{"no column, month", Month, "", []source.Change{at2(2020, 1)}, "1"},
		{"years alternate", Year, "createdon", []source.Change{at2(2020, 1), at2(2021, 1), at2(2020, 5), at2(2020, 7)}, "2020 2021 2020 2020"},
		{"months", Month, "createdon", []source.Change{at2(2020, 1), at2(2020, 2), at2(2020, 2), at2(2021, 2)}, "2020-01 2020-02 2020-02 2021-02"},
		{"NULL, absent, delete, out of range", Year, "createdon", []source.Change{
			{ID: "1", Columns: created, Values: []any{nil}},
			{ID: "1"},
			{ID: "1", Deleted: true},
			{ID: "1", Columns: created, Values: []any{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)}},
		}, "1 1 1 1"},
		{"in UTC", Year, "createdon", []source.Change{{ID: "1", Columns: created, Values: []any{time.Date(2020, 12, 31, 20, 0, 0, 0, est)}}}, "2021"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := newRowEncoder("account", cols, at)
			p := newPartitioner(tc.g, cols, tc.col)
			var got []string
			for i := range tc.changes {
				m, err := enc.resolve(&tc.changes[i])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p.of(m, &tc.changes[i]))
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Fatalf("partitions %q, want %q", g, tc.want)
			}
		})
	}
}

// TestIdleCursorsRecordOnlyTheCursor checks that a commit that only moves
// caught-up tables' cursors records each as a cursor alone, not the
// table's whole state, so that one round of idle cursors of many tables
// costs bytes per table, not per file of every table; and that the state
// read back is the writer's. A commit with data, or one that changes
// anything else, records the table in full.
func TestIdleCursorsRecordOnlyTheCursor(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l := openLake(t, st, c)
	var tx Tx
	for i := range 50 {
		s := accountSchema()
		s.Name = fmt.Sprintf("t%03d", i)
		ch := account(i, 1, "n", t0)
		ch.Table = s.Name
		tx.Tables = append(tx.Tables, TableTx{Name: s.Name, Define: define(s, TableOptions{}), Changes: []source.Change{ch}, Phase: Completed, Cursor: "c0"})
	}
	mustCommit(t, l, tx)
	c.add(time.Minute)
	tx = Tx{}
	for i := range 50 {
		tx.Tables = append(tx.Tables, TableTx{Name: fmt.Sprintf("t%03d", i), Cursor: fmt.Sprintf("c1-%d", i), CaughtUp: true})
	}
	s := mustCommit(t, l, tx)
	rec, err := readRecord(ctxT(t), st, logName(s.Seq))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Tables) != 0 || len(rec.Cursors) != 50 {
		t.Fatalf("record of 50 idle cursors: %d tables in full, %d cursors; want 0 and 50", len(rec.Tables), len(rec.Cursors))
	}
	for i := range 50 {
		ts := s.Tables[fmt.Sprintf("t%03d", i)]
		if ts.Cursor != fmt.Sprintf("c1-%d", i) || !ts.LastSynchronized.Equal(c.now()) || len(ts.Files) == 0 || ts.Source == nil {
			t.Fatalf("%s after its cursor commit: cursor %q, synchronized %v, %d files", ts.Name, ts.Cursor, ts.LastSynchronized, len(ts.Files))
		}
	}
	for _, tc := range []struct {
		name string
		ttx  TableTx
	}{
		{"a cursor with changes", TableTx{Name: "t001", Cursor: "c2", CaughtUp: true, Changes: []source.Change{func() source.Change { ch := account(1, 2, "m", t0); ch.Table = "t001"; return ch }()}}},
		{"a cursor of a table not caught up", TableTx{Name: "t002", Cursor: "c2"}},
		{"a cursor with a phase", TableTx{Name: "t003", Cursor: "c2", CaughtUp: true, Phase: Failed, Reason: "stopped"}},
	} {
		c.add(time.Second)
		s := mustCommit(t, l, Tx{Tables: []TableTx{tc.ttx}})
		rec, err := readRecord(ctxT(t), st, logName(s.Seq))
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Tables) != 1 || len(rec.Cursors) != 0 {
			t.Fatalf("%s: %d tables in full, %d cursors; want the table in full", tc.name, len(rec.Tables), len(rec.Cursors))
		}
	}
	readBack(t, st, l.State())
}

// TestGroupCommit: transactions that queue while a record is written go
// into the next record together; one that fails fails alone, and two of
// one table are never grouped, so they apply in order.
func TestGroupCommit(t *testing.T) {
	st := newStore(t)
	l := openLake(t, st, newClock())
	y24 := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	def := func(name string) *Definition {
		s := accountSchema()
		s.Name = name
		return define(s, TableOptions{})
	}
	row := func(table string, n int) source.Change {
		ch := account(n, 1, "row", y24)
		ch.Table = table
		return ch
	}
	var txs []Tx
	for i := range 5 {
		name := fmt.Sprintf("t%d", i)
		txs = append(txs, Tx{Tables: []TableTx{{Name: name, Define: def(name), Changes: []source.Change{row(name, i)}, Cursor: "c1"}}})
	}
	bad := len(txs)
	txs = append(txs, Tx{Tables: []TableTx{{Name: "t9", Define: def("t9")}, {Name: "t9", Define: def("t9")}}})
	txs = append(txs, Tx{Tables: []TableTx{{Name: "t0", Changes: []source.Change{row("t0", 100)}, Cursor: "c2"}}})

	seq := l.State().Seq
	l.mu.Lock() // a record being written: every Commit below queues
	errs := make([]error, len(txs))
	var wg sync.WaitGroup
	for i, tx := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Commit(ctxT(t), tx)
		}()
		// Queue them in order, so that the groups are known.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			l.qmu.Lock()
			n := len(l.queue)
			l.qmu.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				l.mu.Unlock()
				t.Fatalf("commit %d did not queue", i)
			}
		}
	}
	l.mu.Unlock()
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == bad) {
			t.Errorf("commit %d: %v", i, err)
		}
	}
	s := l.State()
	if got := s.Seq - seq; got != 2 {
		t.Errorf("%d records for %d queued commits, want 2 (one group, then the second commit of t0)", got, len(txs))
	}
	if _, ok := s.Tables["t9"]; ok {
		t.Error("the failed commit's table is in the lake")
	}
	if ts := s.Tables["t0"]; ts == nil || ts.Rows != 2 || ts.Cursor != "c2" {
		t.Errorf("t0 after its two commits: %+v", ts)
	}
	readBack(t, st, s)
}
