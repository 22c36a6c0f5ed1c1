package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestPostgresBadTableAtStart is issue 15's case 15: a table that does not
// exist, or that has no primary key, fails alone at start exactly as it does
// at run time; the link's other tables are copied and stream, and a restart
// does the same instead of exiting at once.
func TestPostgresBadTableAtStart(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "bad")
	c.Exec(t, "bad",
		`CREATE TABLE good (id int PRIMARY KEY, v text)`,
		`INSERT INTO good SELECT g, 'v' FROM generate_series(1, 10) g`,
		`CREATE TABLE nokey (v text)`)
	profile := filepath.Join(t.TempDir(), "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.good", "public.missing", "public.nokey")

	for round := range 2 { // the first start, then a restart
		cmd, errb := startSync(t, profile)
		s := waitStatus(t, profile, "good Completed, the bad tables Failed", func(s statusJSON) bool {
			g, _ := tableStatus(s, "public.good")
			m, _ := tableStatus(s, "public.missing")
			n, _ := tableStatus(s, "public.nokey")
			return s.Running && g == "Completed" && m == "Failed" && n == "Failed"
		})
		if _, e := tableStatus(s, "public.missing"); !strings.Contains(e, "does not exist") {
			t.Errorf("round %d: public.missing's reason %q does not say it does not exist", round, e)
		}
		c.Exec(t, "bad", fmt.Sprintf(`INSERT INTO good VALUES (%d, 'streamed')`, 100+round))
		countIs(t, profile, "public.good", 11+round)
		alive(t, cmd, errb)
		stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	}
}
