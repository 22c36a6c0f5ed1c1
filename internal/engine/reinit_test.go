package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

// watcher counts a table's rows in SQL in a loop, as a reader of the lake
// would, recording every count seen and every failed read.
type watcher struct {
	stop   chan struct{}
	done   chan struct{}
	mu     gosync.Mutex
	counts map[int64]int
	errs   []string
}

func (h *harness) watch(table string) *watcher {
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{}), counts: map[int64]int{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var n int64
			rows, err := h.db.Query(context.Background(), "SELECT count(*) FROM "+table)
			if err == nil {
				if rows.Next() {
					err = rows.Scan(&n)
				}
				err = errors.Join(err, rows.Err(), rows.Close())
			}
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, err.Error())
			} else {
				w.counts[n]++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watcher and fails the test unless every read passed and
// every count seen is one of want.
func (w *watcher) end(t *testing.T, want ...int64) {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.errs) > 0 {
		t.Fatalf("%d failed reads, the first: %s", len(w.errs), w.errs[0])
	}
	for n, times := range w.counts {
		if !slices.Contains(want, n) {
			t.Fatalf("readers counted %d rows (%d times); the table only ever had %v: the re-copy showed an empty or partial table (counts %v)", n, times, want, w.counts)
		}
	}
}

// reinitialising waits for table to be copied afresh beside its data and
// checks what its status says meanwhile.
func (h *harness) reinitialising(table string, rows int64, reason string) {
	h.t.Helper()
	var last TableStatus
	h.eventually(table+" Reinitialising with rows copied", func() bool {
		for _, s := range h.eng.Status() {
			if s.Name == table {
				last = s
			}
		}
		return last.State == Reinitialising && last.Copied > 0
	})
	if last.Rows != rows || !strings.Contains(last.Error, reason) {
		h.t.Fatalf("status while re-initialising: %+v; want Rows %d (what readers count) and a reason saying %q", last, rows, reason)
	}
}

// TestReinitKeepsTheOldDataReadable: whatever re-initialises a table that
// has data, readers count its old rows until the fresh copy replaces them
// in one commit, then the new ones; never an empty or partial table, never
// a failed read (#15 case 3).
func TestReinitKeepsTheOldDataReadable(t *testing.T) {
	const id1 = "00000000-0000-0000-0000-000000000001"
	for _, tc := range []struct {
		name string
		// trigger starts the re-initialisation of contact in the
		// running h, or returns a new harness that does.
		trigger func(t *testing.T, h *harness, dir string) *harness
		reason  string
	}{
		{"expired cursor", func(t *testing.T, h *harness, dir string) *harness {
			h.src.mu.Lock()
			h.src.expire["contact"] = true
			h.src.mu.Unlock()
			return h
		}, "cursor expired"},
		{"--reinit", func(t *testing.T, h *harness, dir string) *harness {
			h.stop()
			return start(t, h.src, dir, Config{Tables: specs("contact"), Reinit: []string{"contact"}})
		}, "--reinit"},
		{"options changed", func(t *testing.T, h *harness, dir string) *harness {
			h.stop()
			return start(t, h.src, dir, Config{Tables: []Spec{{Name: "contact", Options: lake.TableOptions{Granularity: lake.Month}}}})
		}, "options changed"},
		{"retry of a Failed table", func(t *testing.T, h *harness, dir string) *harness {
			h.src.mu.Lock()
			h.src.bad["contact"] = true
			h.src.mu.Unlock()
			h.src.put("contact", "00000000-0000-0000-0000-000000000100", "refused")
			h.eventually("contact Failed", func() bool { return h.state("contact") == Failed })
			h.stop()
			h.src.mu.Lock()
			h.src.bad["contact"] = false
			h.src.mu.Unlock()
			return start(t, h.src, dir, Config{Tables: specs("contact")})
		}, "retrying after"},
		{"restart in the middle of the copy", func(t *testing.T, h *harness, dir string) *harness {
			h.stop()
			h = start(t, h.src, dir, Config{Tables: specs("contact"), Reinit: []string{"contact"}})
			h.reinitialising("contact", 30, "--reinit")
			h.stop()
			if ts := h.lk.State().Tables["contact"]; ts.Reinit == "" || ts.Rows != 30 {
				t.Fatalf("after a stop in the middle of the copy: reinit %q rows %d, want the mark kept and the old 30 rows", ts.Reinit, ts.Rows)
			}
			// Started again without --reinit: the copy starts afresh.
			return start(t, h.src, dir, Config{Tables: specs("contact")})
		}, "--reinit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := newFake("contact")
			src.pageSize = 3
			seed(src, 30, "contact")
			h := start(t, src, dir, Config{Tables: specs("contact")})
			h.converged("contact")
			gen := h.lk.State().Tables["contact"].Generation
			src.mu.Lock()
			src.copyDelay = 20 * time.Millisecond
			src.mu.Unlock()
			h = tc.trigger(t, h, dir)
			w := h.watch("contact")
			h.reinitialising("contact", 30, tc.reason)
			// A row deleted meanwhile: the fresh copy does not have it.
			src.del("contact", id1)
			h.eventually("the fresh copy swapped in", func() bool {
				ts := h.lk.State().Tables["contact"]
				return ts.Generation > gen && ts.Reinit == "" && ts.Phase == lake.Completed
			})
			h.converged("contact")
			// 30 old rows; the fresh copy's 29 (31 with the row the
			// failed table refused), then 30 after the delete; a
			// partial copy would show a multiple of the page size.
			w.end(t, 29, 30, 31)
			if s := h.state("contact"); s != Completed {
				t.Fatalf("state %s after the swap, want Completed", s)
			}
		})
	}
}

// TestReinitWithoutDataCopiesAsBefore: a table with no data to keep is
// reset and copied as a first copy is.
func TestReinitWithoutDataCopiesAsBefore(t *testing.T) {
	dir := t.TempDir()
	src := newFake("contact")
	h := start(t, src, dir, Config{Tables: specs("contact")})
	h.eventually("Completed", func() bool { return h.state("contact") == Completed })
	gen := h.lk.State().Tables["contact"].Generation
	h.stop()
	seed(src, 5, "contact")
	h = start(t, src, dir, Config{Tables: specs("contact"), Reinit: []string{"contact"}})
	h.converged("contact")
	if ts := h.lk.State().Tables["contact"]; ts.Generation != gen+1 || ts.Reinit != "" {
		t.Fatalf("generation %d reinit %q, want %d and none", ts.Generation, ts.Reinit, gen+1)
	}
}

// TestCopyRestartedKeepsItsRows: a first copy that committed part of the
// table and cannot resume (its cursor expired) is copied afresh beside
// the rows it committed, which readers keep counting until the whole copy
// replaces them.
func TestCopyRestartedKeepsItsRows(t *testing.T) {
	dir := t.TempDir()
	src := newFake("contact")
	src.pageSize = 3
	seed(src, 30, "contact")
	// A first copy stopped after 9 rows, as a lake holds it.
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lake.Open(context.Background(), st, lake.Options{Link: "test"})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := src.Describe(context.Background(), "contact")
	if err != nil {
		t.Fatal(err)
	}
	var part []source.Change
	src.mu.Lock()
	for i := range 9 {
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		part = append(part, src.change("contact", id, src.tables["contact"][id]))
	}
	src.resumeExpired, src.copyDelay = true, 20*time.Millisecond
	src.mu.Unlock()
	if _, err := lk.Commit(context.Background(), lake.Tx{Tables: []lake.TableTx{{Name: "contact", Define: &lake.Definition{Source: desc, Options: specs("contact")[0].Options},
		Changes: part, Cursor: "p:30:" + part[8].ID}}}); err != nil {
		t.Fatal(err)
	}
	lk.Close()

	h := start(t, src, dir, Config{Tables: specs("contact")})
	w := h.watch("contact")
	h.reinitialising("contact", 9, "snapshot is gone")
	h.converged("contact")
	w.end(t, 9, 30)
	if ts := h.lk.State().Tables["contact"]; ts.Generation != 2 || ts.Phase != lake.Completed {
		t.Fatalf("generation %d phase %s after the copy, want 2 and Completed", ts.Generation, ts.Phase)
	}
}
