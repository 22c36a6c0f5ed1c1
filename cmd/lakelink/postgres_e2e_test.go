package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// pgbenchTables are the pgbench tables with a primary key, and the balance
// column of each (pgbench_history has no key and is not linkable).
var pgbenchTables = []struct{ name, balance string }{
	{"public.pgbench_accounts", "abalance"},
	{"public.pgbench_branches", "bbalance"},
	{"public.pgbench_tellers", "tbalance"},
}

func pgProfile(t *testing.T, dir, dsn string) string {
	t.Helper()
	p := filepath.Join(dir, "link.yaml")
	body := fmt.Sprintf("name: bank\nsource:\n  type: postgres\n  dsn: %q\nlake:\n  path: ./lake\ntables:\n", dsn)
	for _, tb := range pgbenchTables {
		body += fmt.Sprintf("  - name: %s\n", tb.name)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pgFigures returns per table "rows/sum of balance" at the source.
func pgFigures(t *testing.T, dsn string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	out := map[string]string{}
	for _, tb := range pgbenchTables {
		var n, sum int64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*), coalesce(sum(%s), 0) FROM %s", tb.balance, tb.name)).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		out[tb.name] = fmt.Sprintf("%d/%d", n, sum)
	}
	return out
}

func lakeFigures(t *testing.T, profile string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range pgbenchTables {
		r := queryCSV(t, profile, fmt.Sprintf(`SELECT count(*), coalesce(sum(%s), 0) FROM %q`, tb.balance, tb.name))
		out[tb.name] = r[0][0] + "/" + r[0][1]
	}
	return out
}

// TestPostgresPgbenchCrash links a pgbench database, then runs pgbench while
// `lakelink sync` is killed with SIGKILL several times; at the end the lake
// equals the source, per table, in rows and in the sum of its balances.
func TestPostgresPgbenchCrash(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "bank")
	pgbench := func(args ...string) *exec.Cmd {
		cmd := c.Command("pgbench", append(args, "bank")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("pgbench %v:\n%s", args, out.String())
			}
		})
		return cmd
	}
	if err := pgbench("-i", "-s", "10", "-q").Run(); err != nil {
		t.Fatalf("pgbench -i: %v", err)
	}
	dir := t.TempDir()
	profile := pgProfile(t, dir, dsn)

	load := pgbench("-T", "45", "-c", "4", "-j", "2", "-n")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	// The first kills land in the initial copy (1M accounts take several
	// seconds), the third run is long enough to finish it, and the later
	// kills land in the change stream.
	windows := []time.Duration{1500 * time.Millisecond, 3 * time.Second, 15 * time.Second}
	deadline := time.Now().Add(36 * time.Second)
	for kills := 0; time.Now().Before(deadline); kills++ {
		window := time.Duration(500+rng.IntN(3000)) * time.Millisecond
		if kills < len(windows) {
			window = windows[kills]
		}
		cmd := exec.Command(binary, "sync", "-c", profile)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(window)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if bytes.Contains(errb.Bytes(), []byte("panic")) {
			t.Fatalf("sync panicked:\n%s", errb.String())
		}
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	run(t, 0, "sync", "-c", profile, "--once")
	src, lk := pgFigures(t, dsn), lakeFigures(t, profile)
	for _, tb := range pgbenchTables {
		if src[tb.name] != lk[tb.name] {
			t.Errorf("%s: source rows/balance %s, lake %s", tb.name, src[tb.name], lk[tb.name])
		}
	}
	if d := queryCSV(t, profile, `SELECT Id FROM "public.pgbench_accounts" GROUP BY Id HAVING count(*) > 1`); len(d) > 0 {
		t.Fatalf("Ids present twice: %v", d[:min(5, len(d))])
	}

	if out := run(t, 0, "status", "-c", profile); !strings.Contains(out, "replication slot:") {
		t.Errorf("status does not show the slot's lag:\n%s", out)
	}
	var st struct {
		Source *struct {
			Retained int64 `json:"retained_bytes"`
		} `json:"source"`
	}
	if err := json.Unmarshal([]byte(run(t, 0, "status", "-c", profile, "--json")), &st); err != nil || st.Source == nil {
		t.Errorf("status --json has no source section (%v)", err)
	}

	// unlink drops the slot and publication lakelink created.
	run(t, 0, "unlink", "-c", profile)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var slots int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Fatalf("%d replication slots left after unlink", slots)
	}
}
