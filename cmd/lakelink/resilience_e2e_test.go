package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// pgTablesProfile writes a Postgres link profile over tables.
func pgTablesProfile(t *testing.T, profile, dsn string, tables ...string) {
	t.Helper()
	body := fmt.Sprintf("name: faults\nsource:\n  type: postgres\n  dsn: %q\nlake:\n  path: ./lake\ntables:\n", dsn)
	for _, tb := range tables {
		body += fmt.Sprintf("  - name: %s\n", tb)
	}
	if err := os.WriteFile(profile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startSync starts `lakelink sync -c profile` and returns it with its stderr.
func startSync(t *testing.T, profile string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"sync", "-c", profile}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &errb
}

// tableStatus returns one table's line of status --json.
func tableStatus(s statusJSON, name string) (state, errText string) {
	for _, tb := range s.Tables {
		if tb.Name == name {
			return tb.State, tb.Error
		}
	}
	return "", ""
}

// countIs waits until SQL counts n rows of table in the lake. The table may
// not be in the lake yet (the sync just started): the query is tried again.
func countIs(t *testing.T, profile, table string, n int) {
	t.Helper()
	want := fmt.Sprintf("count_star()\n%d\n", n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code := runExit(t, "query", "-c", profile, "--format", "csv", fmt.Sprintf(`SELECT count(*) FROM %q`, table))
		if code == 0 && out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: query exit %d, output %q, want %q\n%s", table, code, out, want, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alive fails t unless cmd is still running.
func alive(t *testing.T, cmd *exec.Cmd, errb *bytes.Buffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil || cmd.ProcessState != nil {
		t.Fatalf("sync exited (%v):\n%s", err, errb.String())
	}
}

// TestPostgresOneTableFaults is issue 15's cases 6 and 1: a column type
// change pauses only its table while the others keep streaming; a table added
// while one is paused is copied and the sync keeps running, before and after a
// restart; `sync --reinit` applies the type change. Status works before the
// replication slot exists (case 12).
func TestPostgresOneTableFaults(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults",
		`CREATE TABLE ok (id int PRIMARY KEY, v text)`,
		`CREATE TABLE evo (id int PRIMARY KEY, c4 int)`,
		`CREATE TABLE types (id int PRIMARY KEY, d date)`,
		`INSERT INTO ok SELECT g, 'v' || g FROM generate_series(1, 10) g`,
		`INSERT INTO evo SELECT g, g FROM generate_series(1, 5) g`,
		`INSERT INTO types SELECT g, '2024-01-01' FROM generate_series(1, 3) g`,
	)
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.ok", "public.evo")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"public.ok", "public.evo"})

	// Case 6: a type change pauses evo alone; ok keeps streaming.
	c.Exec(t, "faults", `ALTER TABLE evo ALTER COLUMN c4 TYPE text`, `INSERT INTO evo VALUES (6, 'six')`)
	s := waitStatus(t, profile, "evo Paused", func(s statusJSON) bool { st, _ := tableStatus(s, "public.evo"); return st == "Paused" })
	if _, e := tableStatus(s, "public.evo"); !strings.Contains(e, "c4") || !strings.Contains(e, "--reinit public.evo") {
		t.Errorf("evo's reason does not name the column and the action: %q", e)
	}
	c.Exec(t, "faults", `INSERT INTO ok VALUES (11, 'eleven')`)
	countIs(t, profile, "public.ok", 11)
	alive(t, cmd, errb)

	// Case 1: a table added while evo is paused is copied, and the sync
	// keeps running.
	pgTablesProfile(t, profile, dsn, "public.ok", "public.evo", "public.types")
	waitStatus(t, profile, "types Completed", func(s statusJSON) bool { a, _ := tableStatus(s, "public.types"); return a == "Completed" })
	countIs(t, profile, "public.types", 3)
	c.Exec(t, "faults", `INSERT INTO ok VALUES (12, 'twelve')`)
	countIs(t, profile, "public.ok", 12)
	alive(t, cmd, errb)

	// A restart keeps evo paused and the link running.
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	cmd, errb = startSync(t, profile)
	c.Exec(t, "faults", `INSERT INTO ok VALUES (13, 'thirteen')`, `INSERT INTO types VALUES (4, '2024-01-02')`)
	countIs(t, profile, "public.ok", 13)
	countIs(t, profile, "public.types", 4)
	waitStatus(t, profile, "evo still Paused after the restart", func(s statusJSON) bool {
		e, _ := tableStatus(s, "public.evo")
		return s.Running && e == "Paused"
	})
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)

	// sync --once finishes with evo paused: exit 2, it says which table.
	if out := run(t, 2, "sync", "-c", profile, "--once"); out != "" {
		t.Logf("sync --once: %s", out)
	}

	// Case 6: the action the reason names works.
	run(t, 0, "sync", "-c", profile, "--reinit", "public.evo", "--once")
	if got := queryCSV(t, profile, `SELECT c4 FROM "public.evo" WHERE id = 6`); len(got) != 1 || got[0][0] != "six" {
		t.Fatalf("evo after --reinit: c4 of row 6 is %v, want six", got)
	}
	countIs(t, profile, "public.evo", 6)
	run(t, 0, "sync", "-c", profile, "--once")
}
