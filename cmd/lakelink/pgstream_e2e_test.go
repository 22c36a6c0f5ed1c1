package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// pgValue runs a one-value query at the source.
func pgValue[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// arrivesWithin inserts a row into table (id, v) at the source and fails t
// unless the lake counts want rows of it within limit.
func arrivesWithin(t *testing.T, c *pgtest.Cluster, profile, table string, id, want int, limit time.Duration) {
	t.Helper()
	start := time.Now()
	c.Exec(t, "faults", fmt.Sprintf(`INSERT INTO %s VALUES (%d, 'x')`, table, id))
	countIs(t, profile, "public."+table, want)
	if took := time.Since(start); took > limit {
		t.Errorf("a change of %s took %s to reach the lake, want under %s", table, took.Round(time.Millisecond), limit)
	}
}

// allCompleted waits until every table is Completed in a running sync.
func allCompleted(t *testing.T, profile string, tables []string) statusJSON {
	t.Helper()
	return waitStatus(t, profile, "every table Completed", func(s statusJSON) bool {
		for _, tb := range tables {
			if st, _ := tableStatus(s, tb); st != "Completed" {
				return false
			}
		}
		return s.Running
	})
}

// TestPostgresStreamRestarts is issue 15's cases 2 and 11: a restart of the
// change stream (lakelink restarted, PostgreSQL restarted) re-copies no
// table, however long the idle tables have been idle while others changed,
// and changes flow again within seconds; after the slot is dropped, every
// table is copied afresh at once, under one snapshot of the new slot; the
// stream's back-off starts afresh after each recovery.
func TestPostgresStreamRestarts(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	names := []string{"busy", "idle1", "idle2", "idle3", "idle4"}
	var tables []string
	for _, n := range names {
		c.Exec(t, "faults", fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v text)`, n),
			fmt.Sprintf(`INSERT INTO %s SELECT g, 'v' FROM generate_series(1, 10) g`, n))
		tables = append(tables, "public."+n)
	}
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, tables...)
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, tables)

	// Only busy changes; the slot confirms its changes.
	for i := 11; i <= 13; i++ {
		c.Exec(t, "faults", fmt.Sprintf(`INSERT INTO busy VALUES (%d, 'b')`, i))
	}
	countIs(t, profile, "public.busy", 13)
	target := pgValue[string](t, dsn, `SELECT pg_current_wal_insert_lsn()::text`)
	deadline := time.Now().Add(30 * time.Second)
	for !pgValue[bool](t, dsn, `SELECT coalesce(bool_or(confirmed_flush_lsn >= $1::pg_lsn), false) FROM pg_replication_slots WHERE slot_name = 'lakelink_faults'`, target) {
		if time.Now().After(deadline) {
			t.Fatalf("the slot did not confirm %s within 30 s", target)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Case 2: lakelink restarted: nothing is copied again.
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	cmd, errb = startSync(t, profile)
	arrivesWithin(t, c, profile, "idle1", 11, 11, 10*time.Second)
	arrivesWithin(t, c, profile, "busy", 14, 14, 5*time.Second)
	noRecopy(t, errb)

	// Case 11: the slot dropped while lakelink is stopped: every table is
	// copied afresh, together, under the new slot's snapshot.
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	c.Exec(t, "faults", `SELECT pg_drop_replication_slot('lakelink_faults')`, `INSERT INTO idle2 VALUES (11, 'x')`)
	start := time.Now()
	cmd, errb = startSync(t, profile)
	s := allCompleted(t, profile, tables)
	for _, tb := range tables {
		if _, e := tableStatus(s, tb); e != "" {
			t.Errorf("%s after the re-copy: error %q", tb, e)
		}
	}
	countIs(t, profile, "public.idle2", 11)
	arrivesWithin(t, c, profile, "idle3", 11, 11, 5*time.Second)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("after the slot was dropped, the tables took %s to be copied afresh and stream again, want under 20 s", took.Round(time.Millisecond))
	}
	if n := strings.Count(errb.String(), "exported snapshot"); n != 1 {
		t.Errorf("the tables were copied afresh under %d snapshots, want 1:\n%s", n, errb.String())
	}

	// Cases 11 and 2: PostgreSQL restarted under a running sync, twice:
	// the stream reconnects within seconds and re-copies nothing.
	for round := range 2 {
		logged := errb.Len()
		c.Restart(t)
		arrivesWithin(t, c, profile, "idle4", 11+round, 11+round, 10*time.Second)
		arrivesWithin(t, c, profile, "busy", 15+round, 15+round, 5*time.Second)
		noRecopy(t, bytes.NewBufferString(errb.String()[logged:]))
	}
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// noRecopy fails t if the sync's log shows a table copied afresh.
func noRecopy(t *testing.T, log *bytes.Buffer) {
	t.Helper()
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "cursor expired") || strings.Contains(l, "exported snapshot") {
			t.Errorf("a stream restart copied a table afresh: %s", l)
		}
	}
}
