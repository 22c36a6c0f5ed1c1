package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
)

func init() {
	scenarios = append(scenarios, scenario{"steady-state", steadyState})
}

// steady is what one steady-state run measured.
type steady struct {
	tables int
	// p50 is the median time from a change's API answer to SQL.
	p50 time.Duration
	// perChange is what one one-row change cost the sync process: bytes
	// written to the lake (store counters), all bytes it wrote (wchar:
	// the lake, its requests to the source, its log), store operations,
	// fsyncs and commits.
	bytes, wchar, ops, fsyncs, commits float64
	// idleCPU is the sync's CPU time per wall second with no change.
	idleCPU float64
	// idleBytes and idleWchar are what it writes per second then, to
	// the lake and in all.
	idleBytes, idleWchar float64
	// restart is from starting a stopped sync to a change made at that
	// moment being visible in SQL.
	restart time.Duration
}

// steadyState measures a running link that is caught up: the cost of one
// one-row change with 10 linked tables and with many (o.SteadyTables),
// idle CPU, and how soon a restarted sync streams again. The
// figures of the two runs should be the same: the cost of a change follows
// the change, not the number of tables.
func steadyState(ctx context.Context, o *Options) (*Section, error) {
	var res []steady
	for _, n := range []int{10, o.SteadyTables} {
		fmt.Fprintf(o.Log, "steady state with %d tables...\n", n)
		r, err := steadyRun(ctx, o, n)
		if err != nil {
			return nil, fmt.Errorf("%d tables: %w", n, err)
		}
		res = append(res, r)
	}
	a, b := res[0], res[1]
	changes := steadyChanges(o)
	x := func(v, base float64) string {
		if base <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f x", v/base)
	}
	col := fmt.Sprintf("%d tables", b.tables)
	return &Section{
		Name: fmt.Sprintf("Steady state: one-row changes with %d linked tables", b.tables),
		What: fmt.Sprintf("A running `lakelink sync` of contact plus N emulator tables of 10 rows (poll 100 ms, idle back-off to 30 s), caught up and settled (first snapshots taken); idle figures over 30 s (one round of idle polls); one contact update waited for; then %d single-row contact updates at 10/s; the floor column is the same with N = 10 (same run); ratio = N tables / 10 tables.", changes),
		Rows: [][5]string{
			{"change to SQL, p50 (" + col + ")", secs(b.p50), secs(a.p50), x(b.p50.Seconds(), a.p50.Seconds()), "<= 1.2 x"},
			{"lake bytes written per change", fmt.Sprintf("%.0f B", b.bytes), fmt.Sprintf("%.0f B", a.bytes), x(b.bytes, a.bytes), "<= 4 KB, <= 1.2 x"},
			{"all bytes written per change (wchar)", fmt.Sprintf("%.0f B", b.wchar), fmt.Sprintf("%.0f B", a.wchar), x(b.wchar, a.wchar), ""},
			{"store operations per change", fmt.Sprintf("%.1f", b.ops), fmt.Sprintf("%.1f", a.ops), x(b.ops, a.ops), "<= 1.2 x"},
			{"fsyncs per change", fmt.Sprintf("%.1f", b.fsyncs), fmt.Sprintf("%.1f", a.fsyncs), x(b.fsyncs, a.fsyncs), ""},
			{"commits per change", fmt.Sprintf("%.2f", b.commits), fmt.Sprintf("%.2f", a.commits), x(b.commits, a.commits), ""},
			{"idle CPU (share of one core)", fmt.Sprintf("%.1f %%", 100*b.idleCPU), fmt.Sprintf("%.1f %%", 100*a.idleCPU), "", "<= 5 %"},
			{"idle lake bytes written per second", fmt.Sprintf("%.0f B", b.idleBytes), fmt.Sprintf("%.0f B", a.idleBytes), "", ""},
			{"idle bytes written per second (wchar)", fmt.Sprintf("%.0f B", b.idleWchar), fmt.Sprintf("%.0f B", a.idleWchar), "", ""},
			{"restart to streaming", secs(b.restart), secs(a.restart), "", "<= 10 s"},
		},
		Note: "Per-change figures are the sync process's own over the timed changes, idle and background work included, divided by the changes: lake bytes, store operations and fsyncs from its store counters; wchar of /proc/<pid>/io counts every byte it wrote, its HTTP requests to the source (a poll of each idle table every 30 s) and its log included.",
	}, nil
}

// steadyMaxPoll is how far idle tables back off in the steady-state
// scenario, and how long its idle figures are measured: one whole round of
// idle polls, which tables that fell idle together make in a burst.
const steadyMaxPoll = 30 * time.Second

// steadyChanges is how many one-row changes each steady-state run times.
func steadyChanges(o *Options) int { return min(o.Changes, 100) }

func steadyRun(ctx context.Context, o *Options, n int) (steady, error) {
	r := steady{tables: n}
	dir := filepath.Join(o.Dir, strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	_, url, stop, err := serve(ctx, emulator.Config{Dir: filepath.Join(dir, "emulator"), Seed: 1, Scale: 10,
		Counts: map[string]int{"contact": 2 * steadyChanges(o)}, ExtraTables: n, ExtraRows: 10})
	if err != nil {
		return r, err
	}
	defer stop()
	names := []string{"contact"}
	for i := range n {
		names = append(names, emulator.ExtraTableName(i))
	}
	// Idle tables back off as far as the defaults let them.
	p, err := profile(dir, url, names, pollInterval, steadyMaxPoll)
	if err != nil {
		return r, err
	}
	st, err := local.New(filepath.Join(dir, "lake"))
	if err != nil {
		return r, err
	}
	statsFile := filepath.Join(dir, "stats.json")
	sc, err := startSync(ctx, o, p, statsFile)
	if err != nil {
		return r, err
	}
	defer sc.stop()
	if err := waitSettled(ctx, st, len(names)); err != nil {
		return r, err
	}

	i0, err := sc.stats(ctx)
	if err != nil {
		return r, err
	}
	// With --profile the idle window gets a CPU profile of its own
	// (PREFIX.1.cpu.pprof; the rest of the run goes to PREFIX.2).
	if o.Profile != "" {
		_ = sc.cmd.Process.Signal(syscall.SIGUSR2)
	}
	cpu0, w0 := procCPU(sc.pid()), writtenBytes(sc.pid())
	t0 := time.Now()
	sleep(ctx, steadyMaxPoll)
	el := time.Since(t0)
	if o.Profile != "" {
		_ = sc.cmd.Process.Signal(syscall.SIGUSR2)
	}
	r.idleCPU = (procCPU(sc.pid()) - cpu0).Seconds() / el.Seconds()
	r.idleWchar = float64(writtenBytes(sc.pid())-w0) / el.Seconds()
	i1, err := sc.stats(ctx)
	if err != nil {
		return r, err
	}
	r.idleBytes = float64(i1.Sub(i0).BytesWritten) / el.Seconds()

	// A cold cache of the lake database, in the run's own folder: a cache
	// left by an earlier run of a lake at the same path is not this lake's.
	if err := os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache")); err != nil {
		return r, err
	}
	db, err := sqldb.Open(ctx, st, lake.NewReader(st).State)
	if err != nil {
		return r, err
	}
	defer db.Close()
	ids, err := contactIDs(ctx, db, steadyChanges(o))
	if err != nil {
		return r, err
	}
	// contact has backed off to its 30 s idle poll by now: one change,
	// waited for, brings it back to 100 ms, so that the timed changes
	// measure the commit path, not how long the first one waits for a
	// poll.
	c := &demo.Client{URL: url}
	if err := c.Update(ctx, "contacts", ids[0], map[string]any{"lastname": "warm"}); err != nil {
		return r, err
	}
	err = waitUntil(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		return visible(ctx, db, "SELECT count(*) FROM contact WHERE lastname = 'warm'"), nil
	})
	if errors.Is(err, errTimeout) {
		return r, fmt.Errorf("the warm-up change was not visible after a minute")
	}
	if err != nil {
		return r, err
	}
	s0, err := sc.stats(ctx)
	if err != nil {
		return r, err
	}
	seq0 := lakeSeq(ctx, st)
	w0 = writtenBytes(sc.pid())
	sent := make([]time.Time, len(ids))
	seen := make([]time.Time, len(ids))
	done := make(chan error, 1)
	go func() { done <- observe(ctx, db, seen) }()
	tick := time.NewTicker(100 * time.Millisecond)
	for i, id := range ids {
		<-tick.C
		if err := c.Update(ctx, "contacts", id, map[string]any{"lastname": fmt.Sprintf("bench-%d", i)}); err != nil {
			tick.Stop()
			return r, err
		}
		sent[i] = time.Now()
	}
	tick.Stop()
	if err := <-done; err != nil {
		return r, err
	}
	k := float64(len(ids))
	r.wchar = float64(writtenBytes(sc.pid())-w0) / k
	r.commits = float64(lakeSeq(ctx, st)-seq0) / k
	s1, err := sc.stats(ctx)
	if err != nil {
		return r, err
	}
	d := s1.Sub(s0)
	r.ops, r.fsyncs, r.bytes = float64(d.Ops())/k, float64(d.Fsyncs)/k, float64(d.BytesWritten)/k
	lat := make([]time.Duration, len(ids))
	for i := range ids {
		lat[i] = max(seen[i].Sub(sent[i]), 0)
	}
	slices.Sort(lat)
	r.p50 = lat[len(lat)/2]

	sc.stop()
	start := time.Now()
	sc, err = startSync(ctx, o, p, statsFile)
	if err != nil {
		return r, err
	}
	defer sc.stop()
	if err := c.Update(ctx, "contacts", ids[0], map[string]any{"lastname": "restarted"}); err != nil {
		return r, err
	}
	err = waitUntil(ctx, 2*time.Minute, 20*time.Millisecond, func() (bool, error) {
		return visible(ctx, db, "SELECT count(*) FROM contact WHERE lastname = 'restarted'"), nil
	})
	if errors.Is(err, errTimeout) {
		return r, fmt.Errorf("a change made at restart was not visible after 2 minutes")
	}
	if err != nil {
		return r, err
	}
	r.restart = time.Since(start)
	fmt.Fprintf(o.Log, "%d tables: %+v\n", n, r)
	return r, nil
}

// syncChild is a `lakelink sync` running as a child process.
type syncChild struct {
	cmd   *exec.Cmd
	file  string
	ended bool
}

func startSync(ctx context.Context, o *Options, profile, statsFile string) (*syncChild, error) {
	cmd := exec.CommandContext(ctx, o.Binary, "sync", "-c", profile)
	cmd.Env = childEnv(o, statsFile, fmt.Sprintf("steady-sync-%d", profiles.Add(1)))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &syncChild{cmd: cmd, file: statsFile}, nil
}

func (s *syncChild) pid() int { return s.cmd.Process.Pid }

func (s *syncChild) stop() {
	if s.ended {
		return
	}
	s.ended = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// stats asks the child for its store counters (SIGUSR1 makes it write
// them to its StatsEnv file) and waits for them.
func (s *syncChild) stats(ctx context.Context) (store.Stats, error) {
	_ = os.Remove(s.file)
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return store.Stats{}, err
	}
	var st store.Stats
	err := waitUntil(ctx, 5*time.Second, 25*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(s.file)
		return err == nil && json.Unmarshal(b, &st) == nil, nil
	})
	if errors.Is(err, errTimeout) {
		return st, fmt.Errorf("the sync did not report its store counters in %s within 5 s", s.file)
	}
	return st, err
}

// waitSettled waits until all n tables are Completed and have their first
// snapshot, then a few seconds more for the maintenance that follows.
func waitSettled(ctx context.Context, st store.Store, n int) error {
	err := waitUntil(ctx, 20*time.Minute, 250*time.Millisecond, func() (bool, error) {
		s, err := lake.ReadState(ctx, st)
		if err == nil && len(s.Tables) == n {
			ready := 0
			for _, ts := range s.Tables {
				if ts.Phase == lake.Completed && len(ts.Snapshots) > 0 {
					ready++
				}
			}
			if ready == n {
				return true, nil
			}
		}
		if r, err := engine.ReadReport(ctx, st, time.Now(), nil); err == nil {
			for _, t := range r.Tables {
				if t.State == engine.Failed {
					return false, fmt.Errorf("table %s failed: %s", t.Name, t.Error)
				}
			}
		}
		return false, nil
	})
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("the tables were not all Completed with a snapshot after 20 minutes")
	}
	if err == nil {
		sleep(ctx, 5*time.Second)
	}
	return err
}

func lakeSeq(ctx context.Context, st store.Store) int64 {
	s, err := lake.ReadState(ctx, st)
	if err != nil {
		return 0
	}
	return s.Seq
}

// procCPU is the user plus system time process pid has used.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 per second).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// visible reports whether a count(*) query answers 1.
func visible(ctx context.Context, db *sqldb.DB, query string) bool {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return false
	}
	defer rows.Close()
	var n int64
	return rows.Next() && rows.Scan(&n) == nil && n == 1
}
