package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestConcurrentReaders queries the lake in a loop while `lakelink sync`
// applies a pgbench load. Every pgbench transaction adds the same delta to
// one account, one teller and one branch, so in any state made of whole
// transactions the three balance sums are equal: a query that sees them
// differ has seen half of a commit. No query may fail either.
func TestConcurrentReaders(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "bank")
	if out, err := c.Command("pgbench", "-i", "-s", "1", "-q", "bank").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	dir := t.TempDir()
	profile := pgProfile(t, dir, dsn)
	run(t, 0, "sync", "-c", profile, "--once")

	sync := exec.Command(binary, "sync", "-c", profile)
	if err := sync.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sync.Process.Signal(syscall.SIGTERM); _ = sync.Wait() }()
	load := c.Command("pgbench", "-T", "15", "-c", "2", "-n", "bank")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()

	st, err := local.New(filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, st, lake.NewReader(st).State)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const q = `SELECT (SELECT coalesce(sum(abalance), 0) FROM "public.pgbench_accounts"),
	                  (SELECT coalesce(sum(tbalance), 0) FROM "public.pgbench_tellers"),
	                  (SELECT coalesce(sum(bbalance), 0) FROM "public.pgbench_branches")`
	queries, changed := 0, 0
	var last int64
	for done := false; !done; {
		select {
		case err := <-loadDone:
			if err != nil {
				t.Fatalf("pgbench: %v", err)
			}
			done = true
		default:
		}
		var a, tl, b int64
		rows, err := db.Query(ctx, q)
		if err == nil {
			rows.Next()
			err = rows.Scan(&a, &tl, &b)
			rows.Close()
		}
		if err != nil {
			t.Fatalf("query %d failed while the sync wrote: %v", queries, err)
		}
		if a != tl || tl != b {
			t.Fatalf("query %d saw half a commit: accounts %d, tellers %d, branches %d", queries, a, tl, b)
		}
		if a != last {
			changed++
			last = a
		}
		queries++
		time.Sleep(2 * time.Millisecond)
	}
	if changed < 10 {
		t.Fatalf("only %d of %d queries saw new data: the sync did not apply the load while they ran", changed, queries)
	}
	t.Logf("%d queries, %d distinct committed states, none torn", queries, changed)
}
