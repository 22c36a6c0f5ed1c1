package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// Issue 15 case 19, readers' part (and case 3): `lakelink query` in a loop
// while `lakelink sync` commits, compacts and re-initialises a table:
// zero failed reads, and never an empty or partial table that the source
// has rows in. The source only gains rows meanwhile, so every count a
// reader sees must be at least the source's count when the readers began.

// readers runs `lakelink query` counting table's rows in a loop until the
// test calls stop, which fails the test on any failed read or any count
// below floor, and returns how many reads passed.
type readers struct {
	t       *testing.T
	stopped chan struct{}
	done    chan struct{}
	mu      gosync.Mutex
	reads   int
	fails   []string
	low     []string
	// phase names what the sync does now, for the failure messages;
	// phases counts the reads made in each.
	phase  atomic.Value
	phases map[string]int
	// since is when the phase began.
	since time.Time
}

func startReaders(t *testing.T, profile, table string, floor int) *readers {
	r := &readers{t: t, stopped: make(chan struct{}), done: make(chan struct{}), phases: map[string]int{}, since: time.Now()}
	r.phase.Store("streaming")
	sql := fmt.Sprintf(`SELECT count(*) FROM %q`, table)
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stopped:
				return
			default:
			}
			phase := r.phase.Load().(string)
			out, errs, code := runExit(t, "query", "-c", profile, "--format", "csv", sql)
			r.mu.Lock()
			r.reads++
			r.phases[phase]++
			// The CSV is a header and one count.
			n, err := -1, error(nil)
			lines := strings.Fields(out)
			if len(lines) == 2 {
				n, err = strconv.Atoi(lines[1])
			}
			switch {
			case code != 0 || len(lines) != 2 || err != nil:
				r.fails = append(r.fails, fmt.Sprintf("while %s: exit %d: %s%s", phase, code, out, errs))
			case n < floor:
				r.low = append(r.low, fmt.Sprintf("%d rows while %s", n, phase))
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// during notes what the sync does from now on, logging how long the last
// phase took.
func (r *readers) during(phase string) {
	r.mu.Lock()
	r.t.Logf("%s: %v", r.phase.Load(), time.Since(r.since).Round(10*time.Millisecond))
	r.since = time.Now()
	r.mu.Unlock()
	r.phase.Store(phase)
}

func (r *readers) stop(floor int) {
	r.t.Helper()
	close(r.stopped)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fails) > 0 {
		r.t.Errorf("%d of %d reads failed; the first: %s", len(r.fails), r.reads, r.fails[0])
	}
	if len(r.low) > 0 {
		r.t.Errorf("%d of %d reads counted fewer rows than the source's %d (an empty or partial table): %s", len(r.low), r.reads, floor, strings.Join(r.low[:min(len(r.low), 10)], "; "))
	}
	r.t.Logf("%d reads: %v", r.reads, r.phases)
}

// editProfile rewrites the profile with edit, atomically: the readers read
// it all the while.
func editProfile(t *testing.T, profile string, edit func(string) string) {
	t.Helper()
	body, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	tmp := profile + ".new"
	if err := os.WriteFile(tmp, []byte(edit(string(body))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, profile); err != nil {
		t.Fatal(err)
	}
}

// generation returns table's committed generation and its pending change
// rows (those compaction has not folded in yet).
func generation(t *testing.T, lakeDir, table string) (gen int, pending int64) {
	t.Helper()
	st, err := local.New(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lake.ReadState(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Tables[table]
	if ts == nil {
		t.Fatalf("the lake has no table %s", table)
	}
	for _, f := range ts.Changes {
		pending += f.Rows
	}
	return ts.Generation, pending
}

// reinitialised waits, after a sync began to re-initialise table, until
// it is Completed in a new generation. Whenever status shows the table
// Reinitialising it must show the old rows (what readers count) and the
// reason; it reports whether status was seen so with rows copied, and the
// text status with the copy's progress.
func reinitialised(t *testing.T, profile, lakeDir, table string, before, oldRows int) (progress bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := readStatus(t, profile)
		for _, tb := range s.Tables {
			if tb.Name != table || tb.State != "Reinitialising" {
				continue
			}
			if tb.Rows < int64(oldRows) || tb.Error == "" {
				t.Errorf("status while re-initialising %s: rows %d (readers count at least %d), reason %q", table, tb.Rows, oldRows, tb.Error)
			}
			if tb.Copied > 0 && !progress {
				text := run(t, 0, "status", "-c", profile)
				progress = strings.Contains(text, "Reinitialising (") && strings.Contains(text, " copied)")
			}
		}
		if gen, _ := generation(t, lakeDir, table); gen > before && s.Running && tableState(s, table) == "Completed" {
			return progress
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not re-initialised within 90 s; status %+v", table, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reinitStep is one way of re-initialising a table: setup runs while
// sync is stopped, then sync starts again with args.
type reinitStep struct {
	name  string
	args  []string
	setup func()
}

// reinitEach takes table through each step while the readers count it:
// it stops cmd (when one runs), runs the step's setup, starts sync with the
// step's args and waits until the table is re-initialised; with
// wantProgress, status must have shown the copy's progress. It returns the
// sync that runs after the last step.
func reinitEach(t *testing.T, r *readers, profile, lakeDir, table string, rows int, cmd *exec.Cmd, wantProgress bool, steps ...reinitStep) *exec.Cmd {
	t.Helper()
	for _, how := range steps {
		if cmd != nil {
			r.during("restarting for " + how.name)
			stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
		}
		before, _ := generation(t, lakeDir, table)
		if how.setup != nil {
			how.setup()
		}
		r.during("re-initialising after " + how.name)
		cmd, _ = startSync(t, profile, how.args...)
		if !reinitialised(t, profile, lakeDir, table, before, rows) && wantProgress {
			t.Errorf("after %s, status never showed %s Reinitialising with the rows copied so far", how.name, table)
		}
		r.during("streaming after " + how.name)
	}
	return cmd
}

// gainRows calls add(ctx, n) with n = 0, 1, ... every interval, except
// while paused is set, until ctx ends or add fails (a failure while ctx
// lives fails t); the channel is closed when it has stopped.
func gainRows(ctx context.Context, t *testing.T, interval time.Duration, paused *atomic.Bool, add func(ctx context.Context, n int) error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ctx.Err() == nil; {
			if paused == nil || !paused.Load() {
				if err := add(ctx, n); err != nil {
					if ctx.Err() == nil {
						t.Errorf("add source row %d: %v", n, err)
					}
					return
				}
				n++
			}
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	return done
}

// TestReadersWhilePostgresReinitialises: a table of 150 000 rows, streamed
// into (an insert every 100 ms), compacted (an UPDATE of every row, one
// source transaction, with the inserts paused), then re-initialised three ways (--reinit, its
// partition option changed, the replication slot dropped), while readers
// count it in a loop.
func TestReadersWhilePostgresReinitialises(t *testing.T) {
	const rows = 150_000
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "readers")
	c.Exec(t, "readers", `CREATE TABLE items (id int PRIMARY KEY, v text)`,
		fmt.Sprintf(`INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, %d) g`, rows))
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.items")
	const table = "public.items"
	cmd, _ := startSync(t, profile)
	waitStatus(t, profile, "items Completed", func(s statusJSON) bool { return s.Running && tableState(s, table) == "Completed" })
	countIs(t, profile, table, rows)

	r := startReaders(t, profile, table, rows)
	defer r.stop(rows)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The source gains a row every 100 ms, except while paused, until the
	// test cancels ctx; inserted is closed then.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to insert: %v", err)
	}
	defer conn.Close(context.Background())
	var paused atomic.Bool
	inserted := gainRows(ctx, t, 100*time.Millisecond, &paused, func(ctx context.Context, n int) error {
		_, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO items VALUES (%d, 'new')`, rows+n+1))
		return err
	})

	// Compaction: an UPDATE of every row leaves as many pending changes,
	// which the maintenance round after a quiet second folds into the
	// table's files (with the inserts going on, CompactAge would: a
	// minute).
	time.Sleep(time.Second)
	paused.Store(true)
	r.during("compacting")
	c.Exec(t, "readers", `UPDATE items SET v = 'u' || id WHERE id <= 150000`)
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := queryCSV(t, profile, `SELECT count(*) FROM "public.items" WHERE v LIKE 'u%'`)[0][0]
		// The inserts go on: a few of their rows may be pending.
		if _, pending := generation(t, lakeDir, table); got == fmt.Sprint(rows) && pending < 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the UPDATE was not applied and compacted within 90 s (%s rows updated in the lake)", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	paused.Store(false)

	cmd = reinitEach(t, r, profile, lakeDir, table, rows, cmd, false,
		reinitStep{"--reinit", []string{"--reinit", table}, nil},
		reinitStep{"the partition option changed", nil, func() {
			editProfile(t, profile, func(p string) string { return p + "    partition: month\n" })
		}},
		reinitStep{"the slot dropped", nil, func() { c.Exec(t, "readers", `SELECT pg_drop_replication_slot('lakelink_faults')`) }},
	)
	cancel()
	<-inserted
	// An insert in flight at the cancel may have been committed: the
	// source says.
	countIs(t, profile, table, int(pgValue[int64](t, dsn, `SELECT count(*) FROM items`)))
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// TestReadersWhileDataverseReinitialises: contact is re-initialised with
// --reinit, with --reinit again killed (SIGKILL) in the middle of its copy
// and restarted without it, then by a change of its partition option,
// while contacts are
// created at the source and readers count it in a loop. The re-copies read
// the source slowly (pages of 100 at 10 requests a second), so that they
// last seconds.
func TestReadersWhileDataverseReinitialises(t *testing.T) {
	srv := emulatortest.StartServer(t, emulator.Config{Scale: 2000, Seed: 3})
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	profile := writeProfile(t, dir, srv.URL, "  - name: contact\n")
	const table = "contact"
	run(t, 0, "sync", "-c", profile, "--once")
	rows := len(sourceRows(t, srv.URL, "contacts", "contactid"))
	countIs(t, profile, table, rows)
	editProfile(t, profile, func(p string) string {
		return strings.Replace(p, "requests_per_second: 500", "requests_per_second: 10\n  page_size: 100", 1)
	})

	r := startReaders(t, profile, table, rows)
	defer r.stop(rows)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := &demo.Client{URL: srv.URL}
	created := gainRows(ctx, t, 200*time.Millisecond, nil, func(ctx context.Context, n int) error {
		_, err := cl.Create(ctx, "contacts", map[string]any{"lastname": fmt.Sprint("reader ", n)})
		return err
	})

	// The copies last seconds: status shows their progress.
	cmd := reinitEach(t, r, profile, lakeDir, table, rows, nil, true,
		reinitStep{"--reinit", []string{"--reinit", table}, nil},
		reinitStep{"a kill -9 in the middle of --reinit", nil, func() {
			// The killed sync leaves the old rows and the mark: the
			// next start copies the table afresh again.
			killed, _ := startSync(t, profile, "--reinit", table)
			waitStatus(t, profile, "the re-copy under way", func(s statusJSON) bool {
				for _, tb := range s.Tables {
					if tb.Name == table && tb.State == "Reinitialising" && tb.Copied > 0 {
						return true
					}
				}
				return false
			})
			if err := killed.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = killed.Wait()
		}},
		reinitStep{"the partition option changed", nil, func() {
			editProfile(t, profile, func(p string) string { return p + "    partition: month\n" })
		}},
	)
	cancel()
	<-created
	countIs(t, profile, table, len(sourceRows(t, srv.URL, "contacts", "contactid")))
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}
