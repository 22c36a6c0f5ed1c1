package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/pgtest"
)

// TestPostgresTruncate is issue #15's case 4: a TRUNCATE under a running
// `lakelink sync` empties the table in the lake in the commit of its
// transaction (rows the transaction inserts after it stay), for one table,
// several in one statement, CASCADE and inside a transaction large enough
// to be staged; the tables stay Completed, nothing is copied afresh, and a
// change of another table reaches the lake within a second after each.
func TestPostgresTruncate(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults",
		`CREATE TABLE busy (id int PRIMARY KEY, v text)`,
		`CREATE TABLE t1 (id int PRIMARY KEY, v text)`,
		`CREATE TABLE t2 (id int PRIMARY KEY, v text)`,
		`CREATE TABLE parent (id int PRIMARY KEY, v text)`,
		`CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent)`,
	)
	fill := `INSERT INTO t1 SELECT g, 'v' FROM generate_series(1, 1000) g; INSERT INTO t2 SELECT g, 'v' FROM generate_series(1, 10) g;
		INSERT INTO parent SELECT g, 'v' FROM generate_series(1, 5) g; INSERT INTO child SELECT g, g FROM generate_series(1, 5) g`
	c.Exec(t, "faults", fill)
	tables := []string{"public.busy", "public.t1", "public.t2", "public.parent", "public.child"}
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, tables...)
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, tables)
	countIs(t, profile, "public.t1", 1000)
	copied := errb.Len()

	tests := []struct {
		name string
		sql  string
		// want is each table's count after it.
		want map[string]int
		// large: the transaction takes the stream a while, and a change
		// of another table committed after it waits for it.
		large bool
	}{
		{"one table", `TRUNCATE t1`, map[string]int{"t1": 0, "t2": 10, "parent": 5, "child": 5}, false},
		{"several tables", `TRUNCATE t1, t2`, map[string]int{"t1": 0, "t2": 0, "parent": 5, "child": 5}, false},
		{"cascade", `TRUNCATE parent CASCADE`, map[string]int{"t1": 1000, "t2": 10, "parent": 0, "child": 0}, false},
		// 100 000 rows before the TRUNCATE: the source delivers the
		// transaction in parts, which the engine stages (case 10).
		{"in a staged transaction", `BEGIN; UPDATE t2 SET v = 'w'; INSERT INTO t1 SELECT g, 'v' FROM generate_series(1001, 101000) g; TRUNCATE t1;
			INSERT INTO t1 VALUES (1, 'after'); COMMIT`, map[string]int{"t1": 1, "t2": 10, "parent": 5, "child": 5}, true},
	}
	busy := 0
	for _, tt := range tests {
		c.Exec(t, "faults", `TRUNCATE t1, t2, parent, child`, fill)
		countIs(t, profile, "public.t1", 1000)
		countIs(t, profile, "public.child", 5)
		c.Exec(t, "faults", tt.sql)
		if tt.large {
			countIs(t, profile, "public.t1", tt.want["t1"])
		}
		busy++
		visibleWithin(t, c, profile, busy, time.Second)
		for table, n := range tt.want {
			countIs(t, profile, "public."+table, n)
		}
		if !tt.large {
			continue
		}
		if got := queryCSV(t, profile, `SELECT string_agg(v, ',') FROM "public.t1"`)[0][0]; got != "after" {
			t.Errorf("%s: t1 holds %q, want the row inserted after the TRUNCATE (after)", tt.name, got)
		}
	}
	s := allCompleted(t, profile, tables)
	for _, tb := range tables {
		if _, e := tableStatus(s, tb); e != "" {
			t.Errorf("%s: error %q", tb, e)
		}
	}
	noRecopy(t, bytes.NewBufferString(errb.String()[copied:]))
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// visibleWithin inserts row id into busy (id, v) at the source and fails t
// unless SQL counts id rows of it within limit. The time taken is up to the
// start of the first query that sees it, so that a query's own run time
// (a process start) is not counted as the lake's.
func visibleWithin(t *testing.T, c *pgtest.Cluster, profile string, id int, limit time.Duration) {
	t.Helper()
	start := time.Now()
	c.Exec(t, "faults", fmt.Sprintf(`INSERT INTO busy VALUES (%d, 'x')`, id))
	for {
		asked := time.Now()
		if queryCSV(t, profile, `SELECT count(*) FROM "public.busy"`)[0][0] == fmt.Sprint(id) {
			took := asked.Sub(start)
			t.Logf("busy row %d visible within %s", id, took.Round(time.Millisecond))
			if took > limit {
				t.Errorf("a change of busy took %s to reach the lake, want under %s", took.Round(time.Millisecond), limit)
			}
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("busy row %d not in the lake after 30 s", id)
		}
	}
}
