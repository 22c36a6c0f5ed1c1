package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/bench/pgfloor"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

func init() {
	scenarios = append(scenarios,
		scenario{"postgres-initial", postgresInitial},
		scenario{"postgres-cdc", postgresCDC},
		scenario{"postgres-lag", postgresLag},
	)
}

// pgProfile writes a Postgres link profile for tables and returns its path.
func pgProfile(dir, dsn string, tables ...string) (string, error) {
	body := fmt.Sprintf("name: bench\nsource:\n  type: postgres\n  dsn: %q\nlake:\n  path: ./lake\ntables:\n", dsn)
	for _, t := range tables {
		body += fmt.Sprintf("  - name: %s\n", t)
	}
	p := filepath.Join(dir, "link.yaml")
	return p, os.WriteFile(p, []byte(body), 0o644)
}

func pgExec(ctx context.Context, dsn string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func pgScalar(ctx context.Context, dsn, query string, dst any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, query).Scan(dst)
}

// bigTable creates public.orders with n rows of typical application columns.
func bigTable(ctx context.Context, dsn string, n int) error {
	return pgExec(ctx, dsn,
		`CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, customer text NOT NULL,
			amount numeric(12,2) NOT NULL, status smallint NOT NULL, paid boolean NOT NULL, note varchar(200))`,
		fmt.Sprintf(`INSERT INTO orders SELECT i, timestamptz '2020-01-01' + i * interval '17 seconds', 'customer ' || (i %% 100000),
			(i %% 100000) / 100.0, (i %% 5)::smallint, i %% 3 = 0, CASE WHEN i %% 10 = 0 THEN NULL ELSE 'note "' || i || '"' END
			FROM generate_series(1, %d) AS i`, n),
		`VACUUM ANALYZE orders`)
}

func postgresInitial(ctx context.Context, o *Options) (*Section, error) {
	c, err := pgtest.New()
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	dsn := c.DSN("postgres")
	fmt.Fprintf(o.Log, "creating a table of %d rows...\n", o.PGRows)
	if err := bigTable(ctx, dsn, o.PGRows); err != nil {
		return nil, err
	}
	p, err := pgProfile(o.Dir, dsn, "public.orders")
	if err != nil {
		return nil, err
	}
	var floors, ours runs
	var rows, rss int64
	for i := range o.Runs {
		quiesce()
		t0 := time.Now()
		if rows, err = pgfloor.CopyTo(ctx, dsn, "public.orders", io.Discard); err != nil {
			return nil, err
		}
		floors = append(floors, time.Since(t0))
		if i > 0 {
			// Each run starts from nothing: no lake, slot or publication.
			if _, _, err := child(ctx, o, "unlink", "-c", p, "--delete-data"); err != nil {
				return nil, err
			}
		}
		quiesce()
		el, r, err := child(ctx, o, "sync", "-c", p, "--once")
		if err != nil {
			return nil, err
		}
		ours, rss = append(ours, el), max(rss, r)
	}
	el, floor := ours.best(), floors.best()
	return &Section{
		Name: "PostgreSQL: initial sync of one big table",
		What: fmt.Sprintf("`lakelink sync --once` of a %d-row table (bigint key, timestamptz, text, numeric(12,2), smallint, boolean, varchar) into a CSV lake, as a child process; the floor is a raw `COPY orders TO STDOUT` of the same table in the same run. Dirty pages are flushed before each timed run. Best of %d runs each (lakelink: %s; COPY: %s).", rows, o.Runs, ours, floors),
		Rows: [][5]string{
			{"time", secs(el), secs(floor), ratio(el, floor), "<= 1.5 x COPY"},
			{"throughput", perSec(rows, el), perSec(rows, floor), "", ""},
			{"peak memory (RSS)", mib(rss), "-", "", "<= 512 MiB"},
		},
		Note: "lakelink's time includes process start, the replication slot with its exported snapshot, writing and committing the lake, the first snapshot (hard links to the partition files on a local lake) and catching up the change stream once.",
	}, nil
}

func postgresCDC(ctx context.Context, o *Options) (*Section, error) {
	c, err := pgtest.New()
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	dsn := c.DSN("postgres")
	if err := bigTable(ctx, dsn, o.PGUpdate); err != nil {
		return nil, err
	}
	p, err := pgProfile(o.Dir, dsn, "public.orders")
	if err != nil {
		return nil, err
	}
	var floors, ours, cpus runs
	var floor pgfloor.RecvLogicalResult
	var rss int64
	for i := range o.Runs {
		// Each run links the table afresh, so that lakelink's slot, like
		// the floor's, starts just before the update: a slot kept from the
		// previous run would read that run's update again (its restart
		// point stays behind it), which the floor does not. The dead rows
		// of the previous update are vacuumed before either slot starts.
		if i > 0 {
			if _, _, err := child(ctx, o, "unlink", "-c", p, "--delete-data"); err != nil {
				return nil, err
			}
		}
		if err := pgExec(ctx, dsn, `VACUUM orders`); err != nil {
			return nil, err
		}
		fmt.Fprintln(o.Log, "initial sync...")
		if _, _, err := child(ctx, o, "sync", "-c", p, "--once"); err != nil {
			return nil, err
		}
		// The floor's own slot, created before the update so that it holds it.
		var start string
		if err := pgScalar(ctx, dsn, `SELECT lsn::text FROM pg_create_logical_replication_slot('bench_floor', 'pgoutput')`, &start); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "updating %d rows in one transaction...\n", o.PGUpdate)
		if err := pgExec(ctx, dsn, `UPDATE orders SET amount = amount + 1, status = (status + 1) % 5`); err != nil {
			return nil, err
		}
		var end string
		if err := pgScalar(ctx, dsn, `SELECT pg_current_wal_insert_lsn()::text`, &end); err != nil {
			return nil, err
		}
		quiesce()
		f, err := pgfloor.RecvLogical(ctx, c.BinDir, dsn, "bench_floor", "lakelink_bench", start, end)
		if err != nil {
			return nil, err
		}
		if err := pgExec(ctx, dsn, `SELECT pg_drop_replication_slot('bench_floor')`); err != nil {
			return nil, err
		}
		quiesce()
		m, err := measure(ctx, o, "sync", "-c", p, "--once")
		if err != nil {
			return nil, err
		}
		if len(floors) == 0 || f.Elapsed < floors.best() {
			floor = f
		}
		floors, ours, cpus, rss = append(floors, f.Elapsed), append(ours, m.wall), append(cpus, m.cpu), max(rss, m.rss)
	}
	el := ours.best()
	perSec := float64(o.PGUpdate) / el.Seconds()
	return &Section{
		Name: "PostgreSQL: change capture of a bulk update",
		What: fmt.Sprintf("An `UPDATE` of all %d rows of a linked table in one transaction, then `lakelink sync --once` applies it to the lake (child process, from its committed LSN until the stream is idle); the floor is `pg_recvlogical` decoding the same changes (pgoutput, same publication) from its own slot in the same run (%d changes in %s). Dirty pages are flushed before each timed run. Best of %d runs each, each run with the table linked afresh and a new update (lakelink: %s, its CPU time %s; pg_recvlogical: %s).", o.PGUpdate, floor.Changes, secs(floor.Elapsed), o.Runs, ours, cpus, floors),
		Rows: [][5]string{
			{"changes/s", fmt.Sprintf("%.0f", perSec), fmt.Sprintf("%.0f", floor.PerSecond()), fmt.Sprintf("%.2f x", perSec/floor.PerSecond()), ">= 0.8 x pg_recvlogical"},
			{"time", secs(el), secs(floor.Elapsed), ratio(el, floor.Elapsed), ""},
			{"peak memory (RSS)", mib(rss), "-", "", "<= 512 MiB"},
		},
		Note: "lakelink's time includes process start, the idle check (about 0.1 s) that tells `--once` the stream is current, and the final lake maintenance `--once` ends with (compacting all the changes into the partition files).",
	}, nil
}

func postgresLag(ctx context.Context, o *Options) (*Section, error) {
	c, err := pgtest.New()
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	dsn := c.DSN("postgres")
	if out, err := c.Command("pgbench", "-i", "-s", "10", "-q", "postgres").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	p, err := pgProfile(o.Dir, dsn, "public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers")
	if err != nil {
		return nil, err
	}
	proc := exec.CommandContext(ctx, o.Binary, "sync", "-c", p)
	if err := proc.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = proc.Process.Signal(syscall.SIGTERM); _ = proc.Wait() }()
	st, err := local.New(filepath.Join(o.Dir, "lake"))
	if err != nil {
		return nil, err
	}
	for _, t := range []string{"public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers"} {
		if err := waitCompleted(ctx, st, t); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Log, "pgbench -T %s under lakelink sync...\n", o.PGBench)
	load := c.Command("pgbench", "-T", fmt.Sprint(int(o.PGBench.Seconds())), "-c", "4", "-j", "2", "-n", "postgres")
	var loadOut []byte
	loadDone := make(chan error, 1)
	go func() {
		var err error
		loadOut, err = load.CombinedOutput()
		loadDone <- err
	}()
	var lagBytes []int64
	var lagSecs []time.Duration
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
sample:
	for {
		select {
		case err := <-loadDone:
			if err != nil {
				return nil, fmt.Errorf("pgbench: %v\n%s", err, loadOut)
			}
			break sample
		case <-tick.C:
		}
		var b int64
		if err := pgScalar(ctx, dsn, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = 'lakelink_bench'`, &b); err == nil {
			lagBytes = append(lagBytes, b)
		}
		if r, err := engine.ReadReport(ctx, st, time.Now(), nil); err == nil {
			var worst time.Duration
			for _, t := range r.Tables {
				worst = max(worst, time.Duration(t.Lag))
			}
			lagSecs = append(lagSecs, worst)
		}
	}
	var tps string
	for _, l := range strings.Split(string(loadOut), "\n") {
		if strings.HasPrefix(l, "tps = ") {
			tps = l
		}
	}
	slices.Sort(lagBytes)
	slices.Sort(lagSecs)
	q := func(n int, f float64) int { return min(n-1, int(f*float64(n))) }
	if len(lagBytes) == 0 || len(lagSecs) == 0 {
		return nil, fmt.Errorf("no lag samples")
	}
	return &Section{
		Name: "PostgreSQL: lag under a steady pgbench load",
		What: fmt.Sprintf("`pgbench -T %d -c 4` (TPC-B: three linked tables updated per transaction) while `lakelink sync` runs; lag sampled every 0.5 s: the slot's unconfirmed WAL, and the largest table lag `lakelink status` reports. pgbench: %s.", int(o.PGBench.Seconds()), tps),
		Rows: [][5]string{
			{"lag p50 (status)", secs(lagSecs[q(len(lagSecs), 0.5)]), "-", "", ""},
			{"lag max (status)", secs(lagSecs[len(lagSecs)-1]), "-", "", "< 5 s"},
			{"unconfirmed WAL p50", mib(lagBytes[q(len(lagBytes), 0.5)]), "-", "", ""},
			{"unconfirmed WAL max", mib(lagBytes[len(lagBytes)-1]), "-", "", ""},
		},
	}, nil
}
