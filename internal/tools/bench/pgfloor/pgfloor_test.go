package pgfloor

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// lsn runs query, which returns one pg_lsn, in the database at dsn.
func lsn(t *testing.T, dsn, query string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, query).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFloors(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "floors")
	c.Exec(t, "floors", "CREATE TABLE t (id int PRIMARY KEY, v text)", "CREATE PUBLICATION benchpub FOR TABLE t")
	n, err := CopyTo(context.Background(), dsn, "t", io.Discard)
	if err != nil || n != 0 {
		t.Fatalf("CopyTo empty = %d, %v", n, err)
	}
	start := lsn(t, dsn, "SELECT lsn::text FROM pg_create_logical_replication_slot('bench_floors', 'pgoutput')")
	c.Exec(t, "floors",
		"INSERT INTO t SELECT g, E'line\\nbreak' FROM generate_series(1, 1000) g",
		"UPDATE t SET v = 'x' WHERE id <= 100",
		"DELETE FROM t WHERE id > 950",
	)
	// The insert position: with synchronous_commit=off the write position
	// (pg_current_wal_lsn) may still lag the last commit.
	end := lsn(t, dsn, "SELECT pg_current_wal_insert_lsn()::text")
	res, err := RecvLogical(context.Background(), c.BinDir, dsn, "bench_floors", "benchpub", start, end)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != 1150 || res.PerSecond() <= 0 {
		t.Fatalf("RecvLogical = %+v, want 1150 changes", res)
	}
	var out bytes.Buffer
	if n, err := CopyTo(context.Background(), dsn, "t", &out); err != nil || n != 950 {
		t.Fatalf("CopyTo = %d, %v", n, err)
	}
}

func FuzzCountPgoutput(f *testing.F) {
	f.Add([]byte("B0123456789abcdefghij\nC0123456789abcdefghijklmn\n"))
	f.Add([]byte("I\x00\x00\x00\x01N\x00\x02t\x00\x00\x00\x01\nn\n"))
	f.Add([]byte("R\x00\x00\x00\x01public\x00t\x00d\x00\x01\x01id\x00\x00\x00\x00\x17\xff\xff\xff\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = countPgoutput(bufio.NewReader(bytes.NewReader(data)))
	})
}
