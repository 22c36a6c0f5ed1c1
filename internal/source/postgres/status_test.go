package postgres

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

func TestHealthAndDeleted(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	if _, err := s.Health(context.Background()); err == nil {
		t.Fatal("Health before the slot exists: no error")
	}
	copyAll(t, s, &collector{}, "t")
	c.Exec(t, db, "INSERT INTO t SELECT generate_series(1, 1000)")
	h, err := s.Health(context.Background())
	if err != nil || h.Retained <= 0 {
		t.Fatalf("Health = %+v, %v; want retained bytes", h, err)
	}
	if err := s.Deleted(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := tableState(t, dsn, "SELECT 'slots', count(*)::text FROM pg_replication_slots WHERE slot_name = '"+s.slot+"' UNION ALL SELECT 'pubs', count(*)::text FROM pg_publication WHERE pubname = '"+s.pub+"'")
	if st["slots"] != "0" || st["pubs"] != "0" {
		t.Fatalf("after Deleted: %v", st)
	}
}

func TestUserPublicationKept(t *testing.T) {
	_, _, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE u (id int PRIMARY KEY)", "CREATE PUBLICATION mine FOR TABLE t")
	s := newSource(t, Config{DSN: dsn, Publication: "mine", Tables: []TableConfig{{Name: "t"}, {Name: "u"}}})
	copyAll(t, s, &collector{}, "t")
	if err := s.Copy(context.Background(), "u", "", (&collector{}).emit); err == nil || !strings.Contains(err.Error(), "ALTER PUBLICATION") {
		t.Fatalf("Copy of a table outside the user's publication: %v", err)
	}
	if err := s.Deleted(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := tableState(t, dsn, "SELECT pubname::text, '' FROM pg_publication"); len(st) != 1 {
		t.Fatalf("user publication dropped: %v", st)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	c := pgtest.Shared(t)
	const secret = "s3cr3t-Pa55"
	c.Exec(t, "postgres", "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"+pgtest.PasswordRole+"') THEN CREATE ROLE "+pgtest.PasswordRole+" LOGIN REPLICATION PASSWORD '"+secret+"'; END IF; END $$")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := c.TCPDSN("postgres", pgtest.PasswordRole)

	// The right password from a file works, and is not logged.
	s, err := New(ctx, Config{DSN: base, PasswordFile: pwFile, Link: "secret", Logger: log})
	if err != nil {
		t.Fatalf("New with password file: %v", err)
	}
	if _, err := s.Tables(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	t.Setenv("PGPASSWORD", secret)
	s, err = New(ctx, Config{DSN: base, Link: "secret", Logger: log})
	if err != nil {
		t.Fatalf("New with PGPASSWORD: %v", err)
	}
	_ = s.Close()

	for _, cfg := range []Config{
		{DSN: base + " password=" + secret + "x"},
		{DSN: "postgres://" + pgtest.PasswordRole + ":" + secret + "x@127.0.0.1:1/postgres?sslmode=disable"},
		{DSN: "host=127.0.0.1 password=" + secret + " port=notaport"},
	} {
		cfg.Link, cfg.Logger = "secret", log
		_, err := New(ctx, cfg)
		if err == nil {
			t.Fatal("New with a wrong password or port succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
	}
	_, err = New(ctx, Config{DSN: base + " password=wrong", Link: "secret", Logger: log})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v, want ErrAuth", err)
	}
	_, err = New(ctx, Config{DSN: "host=127.0.0.1 port=1 user=x dbname=x sslmode=disable connect_timeout=2", Link: "secret", Logger: log})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed port: %v, want ErrUnreachable", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("logs show the password")
	}
}
