package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/bench/pgfloor"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// BenchmarkStreamBulk measures one transaction updating every row of a
// 7-column table (the shape of lakelink bench --scenario postgres-cdc)
// against pg_recvlogical decoding the same changes: the case where a
// transaction is split into parts.
func BenchmarkStreamBulk(b *testing.B) {
	const rows = 1000000
	c := pgtest.Shared(b)
	db := fmt.Sprintf("bulk%d", dbSeq.Add(1))
	dsn := c.CreateDB(b, db)
	c.Exec(b, db, `CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, customer text NOT NULL,
		amount numeric(12,2) NOT NULL, status smallint NOT NULL, paid boolean NOT NULL, note varchar(200))`)
	c.Exec(b, db, fmt.Sprintf(`INSERT INTO orders SELECT i, timestamptz '2020-01-01' + i * interval '17 seconds', 'customer ' || (i %% 100000),
		(i %% 100000) / 100.0, (i %% 5)::smallint, i %% 3 = 0, CASE WHEN i %% 10 = 0 THEN NULL ELSE 'note "' || i || '"' END
		FROM generate_series(1, %d) AS i`, rows))
	ctx := context.Background()
	for b.Loop() {
		s, cursors, floor, start := benchStreamSource(b, c, db, dsn, "orders", fmt.Sprintf("bbulk%d", linkSeq.Add(1)))
		c.Exec(b, db, `UPDATE orders SET amount = amount + 1, status = (status + 1) % 5`)
		end := tableStateTB(b, dsn, "SELECT 'lsn', pg_current_wal_insert_lsn()::text")["lsn"]
		floorRes, err := pgfloor.RecvLogical(ctx, c.BinDir, dsn, floor, s.pub, start, end)
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime(b)
		total, took := streamUntil(b, s, cursors, rows)
		cpu := cpuTime(b) - cpu0
		endStreamBench(b, c, db, s, floor, total, took, floorRes)
		// The process's CPU time while streaming: the stream's own cost,
		// steadier than throughput on a shared machine.
		b.ReportMetric(cpu.Seconds(), "cpu-s")
	}
}

// cpuTime is the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStreamSource opens a source on table for link and copies it, then
// creates the floor's own slot, so that both see the changes that follow.
// It returns the source, its stream cursors, the floor slot and its start.
func benchStreamSource(b *testing.B, c *pgtest.Cluster, db, dsn, table, link string) (*Source, map[string]string, string, string) {
	ctx := context.Background()
	s, err := New(ctx, Config{DSN: dsn, Link: link, Tables: []TableConfig{{Name: table}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cursors := map[string]string{}
	if err := s.Copy(ctx, table, "", func(_ context.Context, bt source.Batch) error {
		if bt.Done {
			cursors = bt.Cursors
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	floor := "floor_" + link
	c.Exec(b, db, "SELECT pg_create_logical_replication_slot('"+floor+"', 'pgoutput')")
	start := tableStateTB(b, dsn, "SELECT 'lsn', confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '"+floor+"'")["lsn"]
	return s, cursors, floor, start
}

// streamUntil streams from cursors until n changes arrived and returns how
// many did and how long they took.
func streamUntil(b *testing.B, s *Source, cursors map[string]string, n int64) (int64, time.Duration) {
	total := int64(0)
	began := time.Now()
	var took time.Duration
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = s.Stream(sctx, cursors, func(_ context.Context, bt source.Batch) error {
			total += int64(len(bt.Changes))
			if total >= n && took == 0 {
				took = time.Since(began)
				cancel()
			}
			return nil
		})
	}()
	select {
	case <-sctx.Done():
	case <-time.After(2 * time.Minute):
		b.Fatalf("stream delivered %d of %d changes in 2 minutes", total, n)
	}
	return total, took
}

// endStreamBench drops the slots and reports the stream's rate against the
// floor's.
func endStreamBench(b *testing.B, c *pgtest.Cluster, db string, s *Source, floor string, total int64, took time.Duration, floorRes pgfloor.RecvLogicalResult) {
	c.Exec(b, db, "SELECT pg_drop_replication_slot('"+floor+"')")
	time.Sleep(200 * time.Millisecond)
	_ = s.Deleted(context.Background())
	_ = s.Close()
	ours := float64(total) / took.Seconds()
	b.ReportMetric(ours, "changes/s")
	b.ReportMetric(floorRes.PerSecond(), "recvlogical-changes/s")
	b.ReportMetric(ours/floorRes.PerSecond(), "x-floor")
}
