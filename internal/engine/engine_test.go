package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

type harness struct {
	t      *testing.T
	src    *fakeSource
	st     *local.Store
	lk     *lake.Lake
	eng    *Engine
	db     *sqldb.DB
	err    chan error
	cancel context.CancelFunc
}

func specs(names ...string) []Spec {
	var out []Spec
	for _, n := range names {
		o := lake.TableOptions{Granularity: lake.Year}
		if strings.HasSuffix(n, "_log") {
			o.AppendOnly = true
		}
		if strings.HasSuffix(n, "_m") {
			o.Granularity = lake.Month
		}
		out = append(out, Spec{Name: n, Options: o})
	}
	return out
}

// start runs an engine over src and a lake in dir until the test ends.
func start(t *testing.T, src *fakeSource, dir string, cfg Config) *harness {
	t.Helper()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lake.Open(context.Background(), st, lake.Options{Link: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: src, st: st, lk: lk, eng: New(cfg), err: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.err <- h.eng.Run(ctx, src, lk, st) }()
	h.db, err = sqldb.Open(context.Background(), st, lake.NewReader(st).State)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.stop(); h.db.Close() })
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.err; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.lk.Close()
}

// lakeRows returns "Id/versionnumber" of the table's current rows in SQL.
func (h *harness) lakeRows(table string) ([]string, error) {
	rows, err := h.db.Query(context.Background(), fmt.Sprintf(`SELECT CAST(Id AS VARCHAR), versionnumber FROM %s`, table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s/%d", id, v))
	}
	slices.Sort(out)
	return out, rows.Err()
}

// eventually waits until cond holds.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; status %+v", what, h.eng.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) converged(tables ...string) {
	h.t.Helper()
	for _, tb := range tables {
		h.eventually(tb+" to equal the source", func() bool {
			got, err := h.lakeRows(tb)
			return err == nil && slices.Equal(got, h.src.live(tb))
		})
	}
}

func (h *harness) state(table string) State {
	for _, s := range h.eng.Status() {
		if s.Name == table {
			return s.State
		}
	}
	return ""
}

func seed(f *fakeSource, n int, tables ...string) {
	for _, tb := range tables {
		for i := range n {
			f.put(tb, fmt.Sprintf("00000000-0000-0000-0000-%012d", i), fmt.Sprintf("%s %d, \"q\"", tb, i))
		}
	}
}

func TestInitialThenIncremental(t *testing.T) {
	src := newFake("contact", "account_m")
	seed(src, 40, "contact", "account_m")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact", "account_m"), Workers: 2})
	h.eventually("Completed", func() bool { return h.state("contact") == Completed && h.state("account_m") == Completed })
	h.converged("contact", "account_m")

	src.put("contact", "00000000-0000-0000-0000-000000000003", "updated")
	src.del("contact", "00000000-0000-0000-0000-000000000004")
	src.put("contact", "00000000-0000-0000-0000-000000009999", "new")
	src.put("account_m", "00000000-0000-0000-0000-000000009999", "new")
	h.converged("contact", "account_m")

	st := h.lk.State().Tables["contact"]
	if st.Phase != lake.Completed || st.InitialSyncCompleted.IsZero() {
		t.Fatalf("contact state %+v", st)
	}
}

func TestOnceReturnsWhenCurrent(t *testing.T) {
	src := newFake("contact", "lead_log")
	seed(src, 25, "contact", "lead_log")
	st, _ := local.New(t.TempDir())
	lk, err := lake.Open(context.Background(), st, lake.Options{Link: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	eng := New(Config{Tables: specs("contact", "lead_log"), Once: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := eng.Run(ctx, src, lk, st); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("--once did not return")
	}
	for _, s := range eng.Status() {
		if s.State != Completed {
			t.Errorf("%s: %s", s.Name, s.State)
		}
	}
	r, err := ReadReport(context.Background(), st, time.Now().Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Running || len(r.Tables) != 2 || r.Tables[0].Rows != 25 {
		t.Fatalf("report after the run: %+v", r)
	}
}

func TestUntrackedTableFails(t *testing.T) {
	src := newFake("contact", "competitor")
	src.untrack["competitor"] = true
	seed(src, 5, "contact")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact", "competitor")})
	h.eventually("competitor Failed", func() bool { return h.state("competitor") == Failed })
	for _, s := range h.eng.Status() {
		if s.Name == "competitor" && !strings.Contains(s.Error, "change tracking") {
			t.Fatalf("reason %q does not say why", s.Error)
		}
	}
	h.converged("contact")
}

func TestExpiredCursorReinitialises(t *testing.T) {
	src := newFake("contact")
	seed(src, 30, "contact")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact")})
	h.eventually("Completed", func() bool { return h.state("contact") == Completed })
	gen := h.lk.State().Tables["contact"].Generation
	src.mu.Lock()
	src.expire["contact"] = true
	src.mu.Unlock()
	src.del("contact", "00000000-0000-0000-0000-000000000001")
	h.eventually("a new generation", func() bool { return h.lk.State().Tables["contact"].Generation > gen })
	h.converged("contact")
	if r := h.lk.State().Tables["contact"].Reason; !strings.Contains(r, "expired") {
		t.Fatalf("reason %q does not say the cursor expired", r)
	}
}

func TestCopyRetriesTransientErrors(t *testing.T) {
	src := newFake("contact")
	src.copyErrs["contact"] = 1
	seed(src, 10, "contact")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact")})
	h.converged("contact")
}

func TestTablesAddedAndRemoved(t *testing.T) {
	src := newFake("contact", "account", "lead")
	seed(src, 12, "contact", "account", "lead")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact", "account")})
	h.converged("contact", "account")
	h.eng.SetTables(specs("contact", "lead"))
	h.converged("lead")
	h.eventually("account to leave the lake", func() bool { _, ok := h.lk.State().Tables["account"]; return !ok })
	src.put("lead", "00000000-0000-0000-0000-000000000777", "streamed")
	h.converged("lead", "contact")
}

func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	src := newFake("contact")
	src.pageSize = 3
	seed(src, 60, "contact")
	h := start(t, src, dir, Config{Tables: specs("contact")})
	h.eventually("some rows copied", func() bool { got, _ := h.lakeRows("contact"); return len(got) > 0 })
	h.stop()
	h.db.Close()
	src.put("contact", "00000000-0000-0000-0000-000000000002", "changed while stopped")
	src.del("contact", "00000000-0000-0000-0000-000000000059")
	h2 := start(t, src, dir, Config{Tables: specs("contact")})
	h2.converged("contact")
}

func TestBadDataFailsItsTableOnly(t *testing.T) {
	src := newFake("contact", "account")
	seed(src, 10, "contact", "account")
	src.bad["account"] = true
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact", "account")})
	h.eventually("account Failed", func() bool { return h.state("account") == Failed })
	h.converged("contact")
	for _, s := range h.eng.Status() {
		if s.Name == "account" && !strings.Contains(s.Error, "createdon") {
			t.Fatalf("reason %q does not name the column", s.Error)
		}
	}
	// The same in the change stream: contact goes on.
	src.mu.Lock()
	src.bad["contact"] = true
	src.mu.Unlock()
	src.put("contact", "00000000-0000-0000-0000-000000000001", "bad now")
	h.eventually("contact Failed", func() bool { return h.state("contact") == Failed })
}

// TestStatusFollowsStateNotCommits checks that a running sync's published
// table list is rewritten when a table's state changes, not by each commit
// (its size grows with the table count, #16), while ReadReport still shows
// the committed row count and a running sync.
func TestStatusFollowsStateNotCommits(t *testing.T) {
	src := newFake("contact", "account")
	seed(src, 10, "contact", "account")
	h := start(t, src, t.TempDir(), Config{Tables: specs("contact", "account"), Workers: 2})
	h.eventually("Completed", func() bool { return h.state("contact") == Completed && h.state("account") == Completed })
	h.converged("contact", "account")
	ctx := context.Background()
	report := func() *Report {
		r, err := ReadReport(ctx, h.st, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	h.eventually("the status to show both tables Completed", func() bool {
		r := report()
		return r.Running && len(r.Tables) == 2 && r.Tables[0].State == Completed && r.Tables[1].State == Completed
	})
	before, err := store.ReadAll(ctx, h.st, statusObject)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		src.put("contact", fmt.Sprintf("00000000-0000-0000-0000-%012d", 100+i), "new")
	}
	h.converged("contact")
	h.eventually("ROWS to count the new rows", func() bool {
		r := report()
		return r.Running && r.Tables[1].Name == "contact" && r.Tables[1].Rows == h.lk.State().Tables["contact"].Rows && r.Tables[1].Lag < Duration(5*time.Second)
	})
	time.Sleep(2 * statusEvery)
	after, err := store.ReadAll(ctx, h.st, statusObject)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("commits rewrote the table list:\n%s\n%s", before, after)
	}
	h.stop()
	if r := report(); r.Running {
		t.Fatal("status shows a stopped sync as running")
	}
}

// TestIdleCursorsCommitTogether checks that the newer cursors of idle
// tables (a Dataverse delta token moves with the environment's version,
// changes or not) are committed together, in one commit per CursorEvery,
// each as a cursor alone, rather than one commit per table.
func TestIdleCursorsCommitTogether(t *testing.T) {
	var names []string
	for i := range 30 {
		names = append(names, fmt.Sprintf("t%02d", i))
	}
	src := newFake(append([]string{"other"}, names...)...)
	src.advance = true
	seed(src, 2, names...)
	dir := t.TempDir()
	h := start(t, src, dir, Config{Tables: specs(names...), CursorEvery: 500 * time.Millisecond})
	h.eventually("Completed", func() bool {
		for _, n := range names {
			if h.state(n) != Completed {
				return false
			}
		}
		return true
	})
	seq0 := h.lk.State().Seq
	// A change of a table outside the link moves every idle table's token.
	src.put("other", "00000000-0000-0000-0000-000000000001", "x")
	want := fmt.Sprintf("v:%d", src.version)
	h.eventually("every idle cursor committed", func() bool {
		s := h.lk.State()
		for _, n := range names {
			if s.Cursor(s.Tables[n]) != want {
				return false
			}
		}
		return true
	})
	var commits, moved int
	for seq := seq0 + 1; seq <= h.lk.State().Seq; seq++ {
		b, err := os.ReadFile(filepath.Join(dir, "_lakelink", "log", fmt.Sprintf("%020d.json", seq)))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Cursors map[string]string `json:"cursors"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range rec.Cursors {
			if c == want {
				n++
			}
		}
		if n > 0 {
			commits, moved = commits+1, moved+n
		}
	}
	// One round of polls may straddle two rounds of cursor commits.
	if commits > 2 || moved != len(names) {
		t.Fatalf("the %d idle tables' new cursors took %d commits (%d cursors recorded alone); want at most 2 commits recording all %d", len(names), commits, moved, len(names))
	}
}

// TestRestartStreamsBeforeDescribing checks that a restart streams the
// tables that were streaming at once, from their committed descriptions,
// while the source has not described any of them yet; that each is then
// described once; and that a table's changes are committed only once it
// has been described afresh.
func TestRestartStreamsBeforeDescribing(t *testing.T) {
	dir := t.TempDir()
	src := newFake("contact", "account")
	seed(src, 10, "contact", "account")
	h := start(t, src, dir, Config{Tables: specs("contact", "account")})
	h.eventually("Completed", func() bool { return h.state("contact") == Completed && h.state("account") == Completed })
	h.converged("contact", "account")
	h.stop()
	h.db.Close()

	src.mu.Lock()
	src.gate = make(chan struct{})
	src.described, src.streams = 0, 0
	src.mu.Unlock()
	h2 := start(t, src, dir, Config{Tables: specs("contact", "account")})
	h2.eventually("the stream to start while no table is described", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.streams > 0
	})
	if h2.state("contact") != Completed || h2.state("account") != Completed {
		t.Fatalf("states before any description: %+v", h2.eng.Status())
	}
	src.put("contact", "00000000-0000-0000-0000-000000000003", "changed after the restart")
	changed := fmt.Sprintf("00000000-0000-0000-0000-000000000003/%d", src.version)
	time.Sleep(200 * time.Millisecond)
	if got, err := h2.lakeRows("contact"); err != nil || slices.Contains(got, changed) {
		t.Fatalf("contact rows %v (%v) before contact was described afresh; want its change to wait for that", got, err)
	}
	close(src.gate)
	h2.converged("contact", "account")
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.described != 2 {
		t.Fatalf("%d Describe calls after the restart; want one per table", src.described)
	}
}

// TestFinishedCopiesJoinTheStream checks that a table whose copy ends joins
// the running change stream, which goes on without restarting: before,
// every copy that ended restarted the stream, and each restart read every
// streamed table again (O(tables²) reads in an initial sync, #16). A source
// that cannot take a joining table in place (PostgreSQL, past the table's
// cursor) ends the stream with source.ErrRestart: the stream restarts at
// once, as no failure, and the table streams all the same.
func TestFinishedCopiesJoinTheStream(t *testing.T) {
	tables := []string{"contact", "account", "lead", "competitor"}
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuseJoins=%v", refuse), func(t *testing.T) {
			src := newFake(tables...)
			src.refuseJoins = refuse
			seed(src, 9, tables...)
			h := start(t, src, t.TempDir(), Config{Tables: specs("contact")})
			h.converged("contact")
			// Added one at a time, so that each joins on its own.
			for i := 1; i < len(tables); i++ {
				h.eng.SetTables(specs(tables[:i+1]...))
				streams := 1
				if refuse {
					streams = i + 1
				}
				h.eventually(tables[i]+" streaming", func() bool {
					src.mu.Lock()
					defer src.mu.Unlock()
					return h.state(tables[i]) == Completed && src.joins == i && src.streams == streams
				})
			}
			for _, name := range tables {
				src.put(name, "00000000-0000-0000-0000-000000000777", "streamed")
			}
			h.converged(tables...)
			src.mu.Lock()
			streams, joins := src.streams, src.joins
			src.mu.Unlock()
			want := 1
			if refuse {
				want = len(tables)
			}
			if streams != want || joins != len(tables)-1 || h.eng.streamStarts.Load() != int64(want) {
				t.Errorf("%d streams (the engine counted %d), %d joins; want %d and %d", streams, h.eng.streamStarts.Load(), joins, want, len(tables)-1)
			}
			for _, s := range h.eng.Status() {
				if s.State != Completed {
					t.Errorf("%s is %s (%s)", s.Name, s.State, s.Error)
				}
			}
		})
	}
}

// TestOneBatchTableInOneCommit: a new table whose copy is one batch is
// defined, written and completed by one commit (#16: a Define alone first
// doubled the commits of an initial sync of many small tables); a table of
// several batches is still defined first and then staged.
func TestOneBatchTableInOneCommit(t *testing.T) {
	src := newFake("account", "contact")
	seed(src, 5, "account")
	seed(src, 20, "contact") // pages of 7: three batches
	h := start(t, src, t.TempDir(), Config{Tables: specs("account", "contact")})
	h.converged("account", "contact")
	s := h.lk.State()
	for _, tc := range []struct {
		table     string
		rows      int64
		oneCommit bool
	}{
		{"account", 5, true},
		{"contact", 20, false},
	} {
		ts := s.Tables[tc.table]
		if ts.Rows != tc.rows {
			t.Errorf("%s: %d rows, want %d", tc.table, ts.Rows, tc.rows)
		}
		if one := ts.Described.Equal(ts.InitialSyncCompleted); one != tc.oneCommit {
			t.Errorf("%s: described at %v, completed at %v: one commit = %v, want %v", tc.table, ts.Described, ts.InitialSyncCompleted, one, tc.oneCommit)
		}
	}
}
