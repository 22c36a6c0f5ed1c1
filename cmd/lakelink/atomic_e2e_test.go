package main

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestPostgresTransactionsAtomic is issue #15's case 10: a reader polling
// the lake while `lakelink sync` streams a 100 000-row INSERT ... SELECT
// into two tables in one transaction (larger than a batch, so the source
// delivers it in parts), then a full-table UPDATE, sees each transaction
// whole or not at all: counts 0 or N in both tables at once, never between,
// and one value of v at a time.
func TestPostgresTransactionsAtomic(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "atomic")
	c.Exec(t, "atomic",
		`CREATE TABLE big (id int PRIMARY KEY, v int)`,
		`CREATE TABLE side (id int PRIMARY KEY, v int)`,
	)
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.big", "public.side")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"public.big", "public.side"})

	const n = 100000
	const q = `SELECT (SELECT count(*) FROM "public.big"), (SELECT count(*) FROM "public.side"),
	                  (SELECT coalesce(min(v), 0) FROM "public.big"), (SELECT coalesce(max(v), 0) FROM "public.big")`
	// poll queries until want is seen, failing on any state between.
	poll := func(what, want string, ok func(r []string) bool) int {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for reads := 1; ; reads++ {
			r := queryCSV(t, profile, q)[0]
			if !ok(r) {
				t.Fatalf("%s: a reader saw the transaction half applied: big %s rows, side %s rows, v in [%s, %s]", what, r[0], r[1], r[2], r[3])
			}
			if fmt.Sprint(r) == want {
				return reads
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the lake shows %v, want %s", what, r, want)
			}
		}
	}
	var inserted atomic.Bool
	go func() {
		c.Exec(t, "atomic", fmt.Sprintf(`BEGIN; INSERT INTO big SELECT g, 1 FROM generate_series(1, %d) g; INSERT INTO side SELECT g, 1 FROM generate_series(1, 10) g; COMMIT`, n))
		inserted.Store(true)
	}()
	reads := poll("INSERT ... SELECT", fmt.Sprintf("[%d 10 1 1]", n), func(r []string) bool {
		return (r[0] == "0" && r[1] == "0") || (r[0] == fmt.Sprint(n) && r[1] == "10" && r[2] == "1" && r[3] == "1")
	})
	t.Logf("INSERT: %d reads", reads)
	if !inserted.Load() {
		t.Log("the lake showed the transaction before the client saw its commit return")
	}

	go c.Exec(t, "atomic", `UPDATE big SET v = 2`)
	reads = poll("full-table UPDATE", fmt.Sprintf("[%d 10 2 2]", n), func(r []string) bool {
		return r[0] == fmt.Sprint(n) && r[2] == r[3]
	})
	t.Logf("UPDATE: %d reads", reads)
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 30*time.Second)
}
