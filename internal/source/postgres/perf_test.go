package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/bench/pgfloor"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
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
		rows, err := pgfloor.CopyTo(ctx, dsn, "pgbench_accounts", io.Discard)
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
		_ = s.Deleted(ctx)
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
		s, cursors, floor, start := benchStreamSource(b, c, db, dsn, "pgbench_accounts", fmt.Sprintf("bstream%d", linkSeq.Add(1)))
		// 200 transactions of 1000 updates each.
		for i := range 200 {
			c.Exec(b, db, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid %% 200 = %d", i))
		}
		end := tableStateTB(b, dsn, "SELECT 'lsn', pg_current_wal_insert_lsn()::text")["lsn"]
		total, took := streamUntil(b, s, cursors, 200000)
		floorRes, err := pgfloor.RecvLogical(ctx, c.BinDir, dsn, floor, s.pub, start, end)
		if err != nil {
			b.Fatal(err)
		}
		endStreamBench(b, c, db, s, floor, total, took, floorRes)
	}
}
