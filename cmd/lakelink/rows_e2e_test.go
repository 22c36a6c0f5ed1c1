package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestStatusRowsBeforeCompaction is issue 9 §4 and issue 15 case 12 on
// both sources: once streamed inserts, updates of existing rows (one row
// updated twice, a new row updated after its insert) and deletes (of an
// old row and of a new one) are visible in SQL, lakelink status's ROWS is
// what select count(*) returns, while the changes still wait in change
// files (before compaction), with the sync running and after it stopped.
func TestStatusRowsBeforeCompaction(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Start(t)
		dsn := c.CreateDB(t, "rows")
		c.Exec(t, "rows", `CREATE TABLE items (id int PRIMARY KEY, v text)`,
			`INSERT INTO items SELECT g, 'v' FROM generate_series(1, 10) g`)
		dir := t.TempDir()
		profile := filepath.Join(dir, "link.yaml")
		pgTablesProfile(t, profile, dsn, "public.items")
		rowsMatchCount(t, profile, "public.items", 10, func() {
			c.Exec(t, "rows", `UPDATE items SET v = 'upd' WHERE id IN (1, 2)`)
			c.Exec(t, "rows", `INSERT INTO items VALUES (100, 'new'), (101, 'new'), (102, 'new')`)
			c.Exec(t, "rows", `UPDATE items SET v = 'upd' WHERE id IN (2, 3, 100)`)
			c.Exec(t, "rows", `DELETE FROM items WHERE id IN (4, 101)`)
		}, `SELECT count(*) FILTER (WHERE v = 'upd') FROM public.items`, 4, 1)
	})
	t.Run("dataverse", func(t *testing.T) {
		_, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 50, Seed: 5})
		dir := t.TempDir()
		profile := writeProfile(t, dir, url, "  - name: contact\n")
		var before []string
		rowsMatchCount(t, profile, "contact", -1, func() {
			for _, r := range queryCSV(t, profile, `SELECT Id FROM contact ORDER BY Id LIMIT 4`) {
				before = append(before, r[0])
			}
			ctx := context.Background()
			cl := &demo.Client{URL: url}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			upd := map[string]any{"lastname": "upd"}
			must(cl.Update(ctx, "contacts", before[0], upd))
			must(cl.Update(ctx, "contacts", before[1], upd))
			var fresh []string
			for range 3 {
				id, err := cl.Create(ctx, "contacts", map[string]any{"lastname": "new"})
				must(err)
				fresh = append(fresh, id)
			}
			must(cl.Update(ctx, "contacts", before[1], upd))
			must(cl.Update(ctx, "contacts", before[2], upd))
			must(cl.Update(ctx, "contacts", fresh[0], upd))
			must(cl.Delete(ctx, "contacts", before[3]))
			must(cl.Delete(ctx, "contacts", fresh[1]))
		}, `SELECT count(*) FILTER (WHERE lastname = 'upd') FROM contact`, 4, 1)
	})
}

// rowsMatchCount starts a sync of the one table of profile, waits until
// it is Completed (with want0 rows; -1: any), makes the changes, waits
// until SQL shows them (check returns checked), then asserts that status
// counts want0+delta rows, as select count(*) does, while the lake still
// holds the changes uncompacted: with the sync running and after it
// stopped.
func rowsMatchCount(t *testing.T, profile, table string, want0 int64, change func(), check string, checked int, delta int64) {
	t.Helper()
	cmd, _ := startSync(t, profile)
	s := allCompleted(t, profile, []string{table})
	rows0 := statusRows(t, s, table)
	if want0 >= 0 && rows0 != want0 {
		t.Fatalf("%s: status counts %d rows after the copy, want %d", table, rows0, want0)
	}
	change()
	want := rows0 + delta
	deadline := time.Now().Add(30 * time.Second)
	for countOf(t, profile, table) != want || queryInt(t, profile, check) != int64(checked) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the changes did not reach SQL within 30 s: count(*) %d, want %d", table, countOf(t, profile, table), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertRows := func(running bool) {
		t.Helper()
		s := readStatus(t, profile)
		if s.Running != running {
			t.Fatalf("status says running=%v, want %v", s.Running, running)
		}
		if got := statusRows(t, s, table); got != want {
			t.Errorf("%s (sync running: %v): status ROWS %d, select count(*) %d", table, running, got, want)
		}
		if out := run(t, 0, "status", "-c", profile); !strings.Contains(out, fmt.Sprintf(" %d ", want)) {
			t.Errorf("%s: the status table does not show %d rows:\n%s", table, want, out)
		}
		if pendingChanges(t, profile, table) == 0 {
			t.Fatalf("%s: compaction folded the changes in already: the test proves nothing", table)
		}
	}
	assertRows(true)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	assertRows(false)
}

// statusRows is one table's ROWS in status --json.
func statusRows(t *testing.T, s statusJSON, table string) int64 {
	t.Helper()
	for _, tb := range s.Tables {
		if tb.Name == table {
			return tb.Rows
		}
	}
	t.Fatalf("status lists no table %s: %+v", table, s)
	return 0
}

// countOf is select count(*) of table through lakelink query.
func countOf(t *testing.T, profile, table string) int64 {
	t.Helper()
	return queryInt(t, profile, "SELECT count(*) FROM "+table)
}

// queryInt runs a query of one integer through lakelink query.
func queryInt(t *testing.T, profile, sql string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(queryCSV(t, profile, sql)[0][0], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// pendingChanges is the number of change files of table that no
// compaction folded in yet, in the lake of profile.
func pendingChanges(t *testing.T, profile, table string) int {
	t.Helper()
	st, err := local.New(filepath.Join(filepath.Dir(profile), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	state, err := lake.ReadState(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	ts, ok := state.Tables[table]
	if !ok {
		t.Fatalf("the lake has no table %s", table)
	}
	return len(ts.Changes)
}
