package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/pgtest"
	"github.com/lakelink/lakelink/internal/source"
)

// The benchmarks measure the source against its floors (raw COPY, and
// pg_recvlogical), without a lake writer: go test -run X -bench . -benchtime 1x

func benchDB(b *testing.B, scale int) (*pgtest.Cluster, string, string) {
	c := pgtest.Shared(b)
	name := fmt.Sprintf("bench%d", dbSeq.Add(1))
	dsn := c.CreateDB(b, name)
	if out, err := c.Command("pgbench", "-i", "-q", "-s", fmt.Sprint(scale), name).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	return c, name, dsn
}

func BenchmarkCopy(b *testing.B) {
	_, _, dsn := benchDB(b, 20)
	ctx := context.Background()
	for b.Loop() {
		began := time.Now()
		rows, err := CopyTo(ctx, dsn, "pgbench_accounts", io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		raw := time.Since(began)
		s, err := New(ctx, Config{DSN: dsn, Link: fmt.Sprintf("bcopy%d", linkSeq.Add(1)), Tables: []TableConfig{{Name: "pgbench_accounts"}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		began = time.Now()
		err = s.Copy(ctx, "pgbench_accounts", "", func(_ context.Context, bt source.Batch) error {
			n += int64(len(bt.Changes))
			return nil
		})
		ours := time.Since(began)
		if err != nil {
			b.Fatal(err)
		}
		_ = s.DropSlot(ctx)
		_ = s.Close()
		if n != rows {
			b.Fatalf("copied %d rows, raw COPY %d", n, rows)
		}
		b.ReportMetric(float64(rows), "rows")
		b.ReportMetric(raw.Seconds(), "raw-s")
		b.ReportMetric(ours.Seconds(), "copy-s")
		b.ReportMetric(ours.Seconds()/raw.Seconds(), "x-raw")
	}
}

func BenchmarkStream(b *testing.B) {
	c, db, dsn := benchDB(b, 2)
	ctx := context.Background()
	for b.Loop() {
		link := fmt.Sprintf("bstream%d", linkSeq.Add(1))
		s, err := New(ctx, Config{DSN: dsn, Link: link, Tables: []TableConfig{{Name: "pgbench_accounts"}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		cursors := map[string]string{}
		if err := s.Copy(ctx, "pgbench_accounts", "", func(_ context.Context, bt source.Batch) error {
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
		// 200 transactions of 1000 updates each.
		for i := range 200 {
			c.Exec(b, db, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid %% 200 = %d", i))
		}
		end := tableStateTB(b, dsn, "SELECT 'lsn', pg_current_wal_insert_lsn()::text")["lsn"]
		total := int64(0)
		began := time.Now()
		var took time.Duration
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			_ = s.Stream(sctx, cursors, func(_ context.Context, bt source.Batch) error {
				total += int64(len(bt.Changes))
				if total >= 200000 && took == 0 {
					took = time.Since(began)
					cancel()
				}
				return nil
			})
		}()
		select {
		case <-sctx.Done():
		case <-time.After(2 * time.Minute):
			cancel()
			b.Fatalf("stream delivered %d of 200000 changes in 2 minutes", total)
		}
		floorRes, err := RecvLogical(ctx, c.BinDir, dsn, floor, s.pub, start, end)
		if err != nil {
			b.Fatal(err)
		}
		c.Exec(b, db, "SELECT pg_drop_replication_slot('"+floor+"')")
		time.Sleep(200 * time.Millisecond)
		_ = s.DropSlot(ctx)
		_ = s.Close()
		ours := float64(total) / took.Seconds()
		b.ReportMetric(ours, "changes/s")
		b.ReportMetric(floorRes.PerSecond(), "recvlogical-changes/s")
		b.ReportMetric(ours/floorRes.PerSecond(), "x-floor")
	}
}
