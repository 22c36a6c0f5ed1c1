package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStart(t *testing.T) {
	c := Start(t)
	dsn := c.CreateDB(t, "app")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}

	// The password role authenticates over TCP; a wrong password fails.
	c.Exec(t, "app", "CREATE ROLE "+PasswordRole+" LOGIN PASSWORD 'right'")
	good, err := pgx.Connect(ctx, c.TCPDSN("app", PasswordRole)+" password=right")
	if err != nil {
		t.Fatalf("connect with the right password: %v", err)
	}
	good.Close(ctx)
	if _, err := pgx.Connect(ctx, c.TCPDSN("app", PasswordRole)+" password=wrong"); err == nil {
		t.Fatal("connect with a wrong password succeeded")
	}

	out, err := c.Command("pgbench", "-i", "-s", "1", "app").CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "done") {
		t.Fatalf("pgbench -i output: %s", out)
	}
}

// TestWatchdog kills a test binary that runs a cluster: the watchdog stops
// the server and removes its directory.
func TestWatchdog(t *testing.T) {
	if dir := os.Getenv("PGTEST_WATCHDOG_CHILD"); dir != "" {
		c := Start(t)
		if err := os.WriteFile(dir+"/cluster", []byte(c.Dir+"\n"+strconv.Itoa(c.cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		return
	}
	out := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestWatchdog$")
	child.Env = append(os.Environ(), "PGTEST_WATCHDOG_CHILD="+out)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var info []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(out + "/cluster")
		if err == nil && strings.Contains(string(b), "\n") {
			info = strings.Split(string(b), "\n")
			break
		}
		if time.Now().After(deadline) {
			_ = child.Process.Kill()
			t.Fatal("child did not start a cluster")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	pid, _ := strconv.Atoi(info[1])
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, statErr := os.Stat(info[0])
		if syscall.Kill(pid, 0) != nil && os.IsNotExist(statErr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %d or directory %s left behind after the test binary died", pid, info[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
