package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	"github.com/lakelink/lakelink/internal/tools/bench/dvfloor"
	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
)

func init() {
	scenarios = append(scenarios,
		scenario{"dataverse-initial", dataverseInitial},
		scenario{"dataverse-300-tables", dataverseManyTables},
		scenario{"change-latency", changeLatency},
	)
}

// serve starts the emulator on a free local port.
func serve(ctx context.Context, cfg emulator.Config) (*emulator.Emulator, string, func(), error) {
	emu, err := emulator.Open(ctx, cfg)
	if err != nil {
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		emu.Close()
		return nil, "", nil, err
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return emu, "http://" + ln.Addr().String(), func() { srv.Close(); emu.Close() }, nil
}

// Poll intervals of the bench profiles: changes are read within 100 ms;
// the latency and initial-sync scenarios keep idle tables at most 1 s
// behind, the steady-state scenario lets them back off to 30 s.
const (
	pollInterval    = 100 * time.Millisecond
	maxPollInterval = time.Second
)

// profile writes a Dataverse link profile for tables, polled every poll
// and idle tables at most every maxPoll, and returns its path.
func profile(dir, url string, tables []string, poll, maxPoll time.Duration) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "name: bench\nsource:\n  type: dataverse\n  url: %s\n  poll_interval: %s\n  max_poll_interval: %s\n  requests_per_second: 1000\nlake:\n  path: ./lake\nsync:\n  workers: 8\ntables:\n", url, poll, maxPoll)
	for _, t := range tables {
		fmt.Fprintf(&b, "  - name: %s\n", t)
	}
	p := filepath.Join(dir, "link.yaml")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

func committedRows(ctx context.Context, lakeDir, table string) (int64, error) {
	st, err := local.New(lakeDir)
	if err != nil {
		return 0, err
	}
	s, err := lake.ReadState(ctx, st)
	if err != nil {
		return 0, err
	}
	ts, ok := s.Tables[table]
	if !ok {
		return 0, fmt.Errorf("table %s is not in the lake", table)
	}
	return ts.Rows, nil
}

func dataverseInitial(ctx context.Context, o *Options) (*Section, error) {
	fmt.Fprintf(o.Log, "generating %d emulator contacts...\n", o.Contacts)
	_, url, stop, err := serve(ctx, emulator.Config{Dir: filepath.Join(o.Dir, "emulator"), Seed: 1, Scale: 100,
		Counts: map[string]int{"contact": o.Contacts}})
	if err != nil {
		return nil, err
	}
	defer stop()

	fmt.Fprintln(o.Log, "floor: raw page-through...")
	t0 := time.Now()
	raw, err := dvfloor.RawPageThrough(ctx, url, "contacts", 5000, nil)
	if err != nil {
		return nil, err
	}
	floor := time.Since(t0)

	fmt.Fprintln(o.Log, "lakelink sync --once...")
	p, err := profile(o.Dir, url, []string{"contact"}, pollInterval, maxPollInterval)
	if err != nil {
		return nil, err
	}
	el, rss, err := child(ctx, o, "sync", "-c", p, "--once")
	if err != nil {
		return nil, err
	}
	rows, err := committedRows(ctx, filepath.Join(o.Dir, "lake"), "contact")
	if err != nil {
		return nil, err
	}
	return &Section{
		Name: "Dataverse: initial sync of one big table",
		What: fmt.Sprintf("`lakelink sync --once` of %d emulator contacts (all %s columns, pages of 5000) into a CSV lake, as a child process; the floor is a plain paging loop over the same track-changes read that only counts rows.", rows, "contact"),
		Rows: [][5]string{
			{"time", secs(el), secs(floor), ratio(el, floor), "about the floor"},
			{"throughput", perSec(rows, el), perSec(raw, floor), "", ""},
			{"peak memory (RSS)", mib(rss), "-", "", "<= 512 MiB"},
		},
		Note: "lakelink's time includes process start, writing and committing the lake, the first snapshot (hard links to the partition files on a local lake) and catching up the change stream once.",
	}, nil
}

func dataverseManyTables(ctx context.Context, o *Options) (*Section, error) {
	_, url, stop, err := serve(ctx, emulator.Config{Dir: filepath.Join(o.Dir, "emulator"), Seed: 1, Scale: 10,
		ExtraTables: o.Tables, ExtraRows: o.TableRows})
	if err != nil {
		return nil, err
	}
	defer stop()
	names := make([]string, o.Tables)
	for i := range names {
		names[i] = emulator.ExtraTableName(i)
	}
	t0 := time.Now()
	var raw int64
	for _, n := range names {
		r, err := dvfloor.RawPageThrough(ctx, url, emulator.ExtraEntitySet(n), 5000, nil)
		if err != nil {
			return nil, err
		}
		raw += r
	}
	floor := time.Since(t0)
	p, err := profile(o.Dir, url, names, pollInterval, maxPollInterval)
	if err != nil {
		return nil, err
	}
	r, err := measure(ctx, o, "sync", "-c", p, "--once")
	if err != nil {
		return nil, err
	}
	el, rss := r.wall, r.rss
	st, err := local.New(filepath.Join(o.Dir, "lake"))
	if err != nil {
		return nil, err
	}
	s, err := lake.ReadState(ctx, st)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "%d commits, CPU %s; store: %s\n", s.Seq, secs(r.cpu), r.store)
	return &Section{
		Name: fmt.Sprintf("Dataverse: initial sync of %d small tables", o.Tables),
		What: fmt.Sprintf("`lakelink sync --once` of %d emulator tables of %d rows each (8 workers) until every table is Completed; the floor pages through every table once, one after the other, counting rows (%d).", o.Tables, o.TableRows, raw),
		Rows: [][5]string{
			{"time to all Completed", secs(el), secs(floor), ratio(el, floor), "<= 60 s (Synapse Link: about 1 hour)"},
			{"peak memory (RSS)", mib(rss), "-", "", "<= 512 MiB"},
		},
	}, nil
}

// changeLatency measures how long single-row changes take to be visible in
// SQL while a sync runs, and what each costs in bytes written.
func changeLatency(ctx context.Context, o *Options) (*Section, error) {
	_, url, stop, err := serve(ctx, emulator.Config{Dir: filepath.Join(o.Dir, "emulator"), Seed: 1, Scale: max(2000, o.Changes)})
	if err != nil {
		return nil, err
	}
	defer stop()
	p, err := profile(o.Dir, url, []string{"contact"}, pollInterval, maxPollInterval)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.Binary, "sync", "-c", p)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	lakeDir := filepath.Join(o.Dir, "lake")
	st, err := local.New(lakeDir)
	if err != nil {
		return nil, err
	}
	if err := waitCompleted(ctx, st, "contact"); err != nil {
		return nil, err
	}
	db, err := sqldb.Open(ctx, st, lake.NewReader(st).State)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ids, err := contactIDs(ctx, db, o.Changes)
	if err != nil {
		return nil, err
	}

	before := writtenBytes(cmd.Process.Pid)
	sent := make([]time.Time, len(ids))
	seen := make([]time.Time, len(ids))
	done := make(chan error, 1)
	go func() { done <- observe(ctx, db, seen) }()
	c := &demo.Client{URL: url}
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
	for i, id := range ids {
		<-tick.C
		if err := c.Update(ctx, "contacts", id, map[string]any{"lastname": fmt.Sprintf("bench-%d", i)}); err != nil {
			tick.Stop()
			return nil, err
		}
		sent[i] = time.Now()
	}
	tick.Stop()
	if err := <-done; err != nil {
		return nil, err
	}
	written := writtenBytes(cmd.Process.Pid) - before

	lat := make([]time.Duration, len(ids))
	for i := range ids {
		lat[i] = max(seen[i].Sub(sent[i]), 0)
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return &Section{
		Name: "Change to SQL latency",
		What: fmt.Sprintf("%d single-row updates of distinct contacts through the Web API at %.0f changes/s while `lakelink sync` runs (poll interval 100 ms); each is timed from the API's answer until a SQL query on the lake database returns the new value.", len(ids), o.Rate),
		Rows: [][5]string{
			{"p50", secs(pct(0.50)), "-", "", "<= 0.5 s (Synapse Link: about 1 minute)"},
			{"p99", secs(pct(0.99)), "-", "", "<= 2 s"},
			{"max", secs(lat[len(lat)-1]), "-", "", ""},
			{"bytes written per change", fmt.Sprintf("%d B", written/int64(len(ids))), "-", "", "follows the change, not the table"},
		},
		Note: "Bytes written counts every byte the sync process wrote (change files, commit records, checkpoints, compaction, status) during the run, divided by the number of changes.",
	}, nil
}

// waitCompleted waits for table's initial sync in the lake at st.
func waitCompleted(ctx context.Context, st store.Store, table string) error {
	err := waitUntil(ctx, 10*time.Minute, 50*time.Millisecond, func() (bool, error) {
		r, err := engine.ReadReport(ctx, st, time.Now(), nil)
		if err == nil {
			for _, t := range r.Tables {
				if t.Name == table && t.State == engine.Completed {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("%s did not complete its initial sync in 10 minutes", table)
	}
	return err
}

// errTimeout is waitUntil's error when its condition never held.
var errTimeout = errors.New("timed out")

// waitUntil checks done every tick until it holds or fails, for at most
// timeout (then errTimeout) or until ctx ends.
func waitUntil(ctx context.Context, timeout, tick time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tick):
		}
	}
	return errTimeout
}

func contactIDs(ctx context.Context, db *sqldb.DB, n int) ([]string, error) {
	rows, err := db.Query(ctx, fmt.Sprintf("SELECT CAST(Id AS VARCHAR) FROM contact ORDER BY Id LIMIT %d", n))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// observe polls the lake database until every change i (lastname bench-i)
// has been seen, recording when.
func observe(ctx context.Context, db *sqldb.DB, seen []time.Time) error {
	left := len(seen)
	deadline := time.Now().Add(time.Duration(len(seen))*time.Second + time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d changes never became visible", left)
		}
		rows, err := db.Query(ctx, "SELECT lastname FROM contact WHERE lastname LIKE 'bench-%'")
		if err != nil {
			return err
		}
		now := time.Now()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			i, err := strconv.Atoi(strings.TrimPrefix(s, "bench-"))
			if err == nil && i < len(seen) && seen[i].IsZero() {
				seen[i] = now
				left--
			}
		}
		rows.Close()
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// writtenBytes reads how many bytes process pid has written (wchar in
// /proc/<pid>/io).
func writtenBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
