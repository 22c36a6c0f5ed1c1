package pgtest

import (
	"context"
	"strings"
	"testing"

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
