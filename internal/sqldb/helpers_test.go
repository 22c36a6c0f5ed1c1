package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// testLake is a lake folder whose committed state a test sets by hand.
type testLake struct {
	t     testing.TB
	st    *local.Store
	mu    sync.Mutex
	state *lake.State
	loads int
}

func newTestLake(t testing.TB) *testLake {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &testLake{t: t, st: st, state: &lake.State{Link: "test", Tables: map[string]*lake.TableState{}}}
}

// write stores a CSV object and returns its File.
func (l *testLake) write(name, content string) lake.File {
	l.t.Helper()
	if err := store.Put(context.Background(), l.st, name, []byte(content)); err != nil {
		l.t.Fatal(err)
	}
	return lake.File{Path: name, Rows: int64(strings.Count(content, "\n")), Bytes: int64(len(content))}
}

// commit publishes a new state with the given tables replaced or added.
func (l *testLake) commit(tables ...*lake.TableState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := &lake.State{Seq: l.state.Seq + 1, Link: l.state.Link, Committed: time.Date(2026, 4, 14, 20, 0, 0, 0, time.UTC).Add(time.Duration(l.state.Seq) * time.Second), Tables: map[string]*lake.TableState{}}
	for k, v := range l.state.Tables {
		next.Tables[k] = v
	}
	for _, t := range tables {
		next.Tables[t.Name] = t
	}
	l.state = next
}

// drop publishes a new state without the named table.
func (l *testLake) drop(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := &lake.State{Seq: l.state.Seq + 1, Link: l.state.Link, Tables: map[string]*lake.TableState{}}
	for k, v := range l.state.Tables {
		if k != name {
			next.Tables[k] = v
		}
	}
	l.state = next
}

func (l *testLake) load(context.Context) (*lake.State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loads++
	return l.state, nil
}

// open opens the lake database without the Parquet cache: the views read
// the CSV files.
func (l *testLake) open() *DB {
	l.t.Helper()
	return l.openWith(Options{})
}

func (l *testLake) openWith(opts Options) *DB {
	l.t.Helper()
	db, err := OpenWith(context.Background(), l.st, l.load, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { db.Close() })
	return db
}

// openCached opens the lake database with a Parquet cache in a temporary
// directory and waits until every file the views read is cached.
func (l *testLake) openCached() *DB {
	l.t.Helper()
	db := l.openWith(Options{CacheDir: l.t.TempDir()})
	warm(l.t, db)
	return db
}

// warm waits until the cache has converted every file the committed state
// names and the views read the cache files.
func warm(t testing.TB, db *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.WaitCache(ctx); err != nil {
		t.Fatal(err)
	}
}

// modes runs f with the views reading CSV files and with them reading the
// warm Parquet cache: the results must be the same.
func modes(t *testing.T, f func(t *testing.T, open func(l *testLake) *DB)) {
	t.Run("csv", func(t *testing.T) { f(t, (*testLake).open) })
	t.Run("parquet", func(t *testing.T) { f(t, (*testLake).openCached) })
}

// sys returns the system columns of the lake layout around data columns.
func layout(data ...lake.Column) []lake.Column {
	cols := []lake.Column{
		{Name: "Id", Type: schema.Guid, System: true},
		{Name: "SinkCreatedOn", Type: schema.DateTime, System: true},
		{Name: "SinkModifiedOn", Type: schema.DateTime, System: true},
	}
	cols = append(cols, data...)
	return append(cols,
		lake.Column{Name: "versionnumber", Type: schema.Int64, System: true},
		lake.Column{Name: "createdon", Type: schema.DateTime},
		lake.Column{Name: "modifiedon", Type: schema.DateTime},
		lake.Column{Name: "IsDelete", Type: schema.Boolean, System: true},
	)
}

// id is a deterministic GUID.
func id(n int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }

// row is one CSV line of the layout above with one string column "name":
// Id, SinkCreatedOn, SinkModifiedOn, name, versionnumber, createdon,
// modifiedon, IsDelete.
func row(n int, name string, version int64, deleted bool) string {
	del := ""
	if deleted {
		del = "True"
	}
	nameField := ""
	if !deleted {
		nameField = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	return fmt.Sprintf(`%s,"4/14/2026 8:21:50 PM","4/14/2026 8:21:50 PM",%s,%d,"2020-01-01T00:15:00.0000000Z","2020-01-01T00:15:00.0000000Z",%s`+"\n",
		id(n), nameField, version, del)
}

// query runs q and returns every row as text, one string per row with
// values separated by "|", NULL as "NULL".
func query(t testing.TB, db *DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out, err := collect(rows)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func collect(rows *sql.Rows) ([]string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = testText(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rows.Err()
}

// testText shows a value for comparisons: times in RFC 3339, NULL as NULL.
func testText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return v.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	case []byte:
		if len(v) == 16 {
			return uuid.UUID(v).String()
		}
		return string(v)
	case duckdb.Decimal:
		return decimalText(v)
	default:
		return fmt.Sprint(v)
	}
}
