package pgwire

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakelink/lakelink/internal/endpoint"
)

// TestSandboxThroughTheWire tries every escape of the read-only lake
// database through the endpoint, in both protocols: each is refused with
// its SQLSTATE and nothing is written.
func TestSandboxThroughTheWire(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	root := l.st.Location("")
	outside := t.TempDir()
	before := listFiles(t, root)
	cases := []struct{ sql, code string }{
		{`INSERT INTO contact (fullname) VALUES ('x')`, "25006"},
		{`UPDATE contact SET fullname = 'x'`, "25006"},
		{`DELETE FROM contact`, "25006"},
		{`CREATE TABLE t (a int)`, "25006"},
		{`DROP VIEW contact`, "25006"},
		{`COPY contact TO '` + filepath.Join(root, "_lakelink", "log", "x.json") + `'`, "25006"},
		{`COPY (SELECT 1) TO '` + filepath.Join(outside, "x.csv") + `'`, "25006"},
		{`EXPORT DATABASE '` + filepath.Join(outside, "db") + `'`, "25006"},
		{`ATTACH '` + filepath.Join(outside, "x.duckdb") + `' AS x`, "42501"},
		{`INSTALL httpfs`, "42501"},
		{`LOAD httpfs`, "42501"},
		{`PRAGMA enable_profiling`, "42501"},
		{`SET enable_external_access = true`, "42501"},
		{`SET lock_configuration = false`, "42501"},
		{`RESET allowed_directories`, "42501"},
		{`SELECT * FROM read_csv('/etc/passwd')`, "42501"},
		{`SELECT * FROM read_text('/etc/hostname')`, "42501"},
		{`SELECT * FROM glob('/etc/*')`, "42501"},
		{`SELECT * FROM read_csv('` + root + `/../x.csv')`, "42501"},
		{`SELECT enable_logging()`, "42501"},
		{`SELECT * FROM query('INSERT INTO x VALUES (1)')`, "42501"},
		{`CALL enable_logging()`, "42501"},
		{`SELECT 1; DROP VIEW contact`, "25006"},
	}
	for _, mode := range []string{"", "&default_query_exec_mode=simple_protocol"} {
		c := l.connect(mode)
		for _, tc := range cases {
			_, err := c.Exec(context.Background(), tc.sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("%s%s: got %v, want SQLSTATE %s", tc.sql, mode, err, tc.code)
			}
			// Exec without arguments takes the simple protocol; Prepare
			// sends the statement in a Parse message.
			_, err = c.Prepare(context.Background(), "", tc.sql)
			if !errors.As(err, &pe) || pe.Code != tc.code && !strings.HasPrefix(tc.sql, "SELECT 1;") {
				t.Errorf("prepare %s: got %v, want SQLSTATE %s", tc.sql, err, tc.code)
			}
		}
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM contact").Scan(&n); err != nil || n != 2 {
			t.Errorf("after the attacks: %v, %d rows", err, n)
		}
	}
	if after := listFiles(t, root); !maps.Equal(before, after) {
		t.Errorf("the lake folder changed:\nbefore %v\nafter  %v", before, after)
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("files written outside the lake: %v", entries)
	}
}

// TestClientStatements: what clients send besides queries is answered
// without reaching the lake database.
func TestClientStatements(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	c := l.connect("")
	ctx := context.Background()
	for _, q := range []string{"BEGIN", "SET application_name = 'x'", "SET extra_float_digits = 3", "SET TIME ZONE 'UTC'",
		"SET search_path TO public", "SHOW TABLES", "COMMIT", "DISCARD ALL", "START TRANSACTION READ ONLY", "ROLLBACK"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	var v string
	if err := c.QueryRow(ctx, "SHOW application_name").Scan(&v); err != nil || v != "x" {
		t.Errorf("SHOW application_name: %q %v", v, err)
	}
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil || v != serverVersion {
		t.Errorf("SHOW server_version: %q %v", v, err)
	}
	_, err := c.Exec(ctx, "SET TIME ZONE 'Europe/Paris'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22023" {
		t.Errorf("SET TIME ZONE Europe/Paris: %v", err)
	}
}

// TestConcurrentClientsWhileCommitting: 50 clients query while the lake
// commits; every read succeeds and sees a whole commit.
func TestConcurrentClientsWhileCommitting(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	ctx, stop := context.WithTimeout(context.Background(), 4*time.Second)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 50 {
		c := l.connect("")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// Each commit below adds one contact and raises the
				// version of contact 1 to the count: a whole commit has
				// max(versionnumber) = count(*) - 1.
				var n, v int64
				err := c.QueryRow(context.Background(), "SELECT count(*), max(versionnumber) FROM contact WHERE $1 >= 0", i).Scan(&n, &v)
				if err != nil {
					errs <- err
					return
				}
				if v != n-1 {
					errs <- errors.New("a read saw half a commit")
					return
				}
			}
		}()
	}
	commits := 0
	for n := 3; ctx.Err() == nil; n++ {
		l.commit(nil, contact(n, 1, "c", nil, nil, nil, nil, nil, nil, nil, nil), contact(1, int64(n-1), "Ada", nil, nil, nil, nil, nil, nil, nil, nil))
		commits++
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if commits < 5 {
		t.Errorf("only %d commits", commits)
	}
}

// TestBusy: beyond MaxQueries running and MaxQueued waiting, a query
// fails at once with a clear message.
func TestBusy(t *testing.T) {
	lim := endpoint.DefaultLimits
	lim.MaxQueries, lim.MaxQueued = 1, 0
	l := newTestLake(t, lim)
	slow := l.connect("")
	go func() {
		_, _ = slow.Exec(context.Background(), `SELECT count(*) FROM range(3000000000) a`)
	}()
	time.Sleep(300 * time.Millisecond)
	_, err := l.connect("").Exec(context.Background(), "SELECT 1 FROM contact")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53000" || !strings.Contains(pe.Message, "busy") {
		t.Errorf("got %v, want the busy error", err)
	}
	_ = slow.PgConn().CancelRequest(context.Background())
}

func listFiles(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
