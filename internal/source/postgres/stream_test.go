package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/source"
)

// copyAll copies tables and returns their stream cursors.
func copyAll(t *testing.T, s *Source, col *collector, tables ...string) map[string]string {
	t.Helper()
	cursors := map[string]string{}
	for _, name := range tables {
		if err := s.Copy(context.Background(), name, "", col.emit); err != nil {
			t.Fatalf("Copy %s: %v", name, err)
		}
		cursors[name] = col.last().Cursors[name]
	}
	return cursors
}

// running is a Stream running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func startStream(s *Source, cursors map[string]string, col *collector) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Stream(ctx, cursors, col.emit) }()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreamTypes(t *testing.T) {
	create, insert := typeTableSQL()
	c, db, dsn := newDB(t, append(typeSetup, create)...)
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "alltypes"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "alltypes")
	r := startStream(s, cursors, col)
	defer r.stop(t)
	c.Exec(t, db, insert)
	waitFor(t, "the streamed row", func() bool { _, ok := col.rows()["alltypes"]["1"]; return ok })
	checkTypeRow(t, "stream", col.rows()["alltypes"]["1"])
	// Stream and copy agree on the schema.
	var first *source.Batch
	for i := range col.batches {
		if col.batches[i].Schemas != nil {
			first = &col.batches[i]
			break
		}
	}
	if first == nil {
		t.Fatal("no batch carried the table's schema")
	}
	desc, _ := s.Describe(context.Background(), "alltypes")
	if !sameShape(desc, first.Schemas["alltypes"]) {
		t.Fatalf("stream schema %+v differs from Describe %+v", first.Schemas["alltypes"], desc)
	}
}

// tableState reads the table as the lake should hold it.
func tableState(t *testing.T, dsn, query string) map[string]string {
	return tableStateTB(t, dsn, query)
}

func tableStateTB(t testing.TB, dsn, query string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	return out
}

func lakeState(col *collector, table, column string) map[string]string {
	out := map[string]string{}
	for id, ch := range col.rows()[table] {
		if !ch.Deleted {
			out[id] = fmt.Sprint(value(ch, column))
		}
	}
	return out
}

func diff(a, b map[string]string) string {
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return fmt.Sprintf("id %s: %q vs %q (present %v)", k, v, w, ok)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return fmt.Sprintf("id %s missing on the left", k)
		}
	}
	return ""
}

// TestHandoffUnderWrites copies while writers insert, update and delete, then
// streams: the result equals the table, and no change is delivered twice.
func TestHandoffUnderWrites(t *testing.T) {
	_, _, dsn := newDB(t,
		"CREATE TABLE acc (id int PRIMARY KEY, n int NOT NULL)",
		"INSERT INTO acc SELECT g, 0 FROM generate_series(1, 20000) g",
	)
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "acc"}}, CopyWorkers: 2, BatchRows: 2000})
	ctx, stopWriters := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.Background())
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				id := rng.IntN(25000) + 1
				var err error
				switch rng.IntN(3) {
				case 0:
					_, err = conn.Exec(context.Background(), "INSERT INTO acc VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = acc.n + 1", id)
				case 1:
					_, err = conn.Exec(context.Background(), "UPDATE acc SET n = n + 1 WHERE id = $1", id)
				default:
					_, err = conn.Exec(context.Background(), "DELETE FROM acc WHERE id = $1", id)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	col := &collector{}
	cursors := copyAll(t, s, col, "acc")
	r := startStream(s, cursors, col)
	time.Sleep(500 * time.Millisecond)
	stopWriters()
	wg.Wait()
	want := tableState(t, dsn, "SELECT id::text, n::text FROM acc")
	waitFor(t, "the lake to equal the table", func() bool { return diff(lakeState(col, "acc", "n"), want) == "" })
	r.stop(t)
	seen := map[string]bool{}
	for _, b := range col.batches {
		for _, ch := range b.Changes {
			k := ch.ID + "/" + strconv.FormatInt(ch.Version, 10)
			if seen[k] {
				t.Fatalf("change %s delivered twice", k)
			}
			seen[k] = true
		}
	}
}

func TestMultiTableTransactionInOneBatch(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY, x text)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "a"}, {Name: "b"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "a", "b")
	r := startStream(s, cursors, col)
	defer r.stop(t)
	c.Exec(t, db, "BEGIN", "INSERT INTO a VALUES (1), (2)", "INSERT INTO b VALUES (1, 'x')", "UPDATE a SET id = 3 WHERE id = 2", "COMMIT")
	waitFor(t, "the transaction", func() bool { _, ok := col.rows()["b"]["1"]; return ok })
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, b := range col.batches {
		if len(b.Changes) == 0 {
			continue
		}
		if len(b.Changes) != 5 {
			t.Fatalf("transaction split or merged wrongly: %+v", b.Changes)
		}
		// insert a1, insert a2, insert b1, delete a2 + insert a3 (key change)
		if !b.Changes[3].Deleted || b.Changes[3].ID != "2" || b.Changes[4].ID != "3" {
			t.Fatalf("key change not delivered as delete + insert: %+v", b.Changes)
		}
		for i := 1; i < len(b.Changes); i++ {
			if b.Changes[i].Version <= b.Changes[i-1].Version {
				t.Fatalf("versions do not grow inside the transaction: %+v", b.Changes)
			}
		}
		if b.Cursors["a"] == "" || b.Cursors["b"] == "" {
			t.Fatalf("batch cursors %v", b.Cursors)
		}
		return
	}
	t.Fatal("no batch with changes")
}

// TestRecentRowValue: the values kept for a row resolve a column by
// position under the same relation, by name under another one.
func TestRecentRowValue(t *testing.T) {
	old := []string{"id", "gone", "body"}
	cur := []string{"id", "body", "extra"}
	for _, tc := range []struct {
		name   string
		prev   recentRow
		i      int
		want   any
		wantOK bool
	}{
		{"same relation", recentRow{cur, []any{int64(1), "b", "x"}}, 1, "b", true},
		{"same names, another relation", recentRow{slices.Clone(cur), []any{int64(1), "b", "x"}}, 2, "x", true},
		{"older relation", recentRow{old, []any{int64(1), int64(7), "b"}}, 1, "b", true},
		{"column new since", recentRow{old, []any{int64(1), int64(7), "b"}}, 2, nil, false},
		{"no row", recentRow{}, 1, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.prev.value(cur, tc.i)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("value = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestToastUnchanged(t *testing.T) {
	c, db, dsn := newDB(t,
		"CREATE TABLE doc (id int PRIMARY KEY, n int, body text)",
		"ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL",
	)
	// 100 kB that compression cannot shrink below the TOAST threshold.
	big := "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3200) g)"
	c.Exec(t, db, "INSERT INTO doc VALUES (1, 0, "+big+"), (2, 0, "+big+")")
	want := tableState(t, dsn, "SELECT id::text, body FROM doc")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "doc"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "doc")
	r := startStream(s, cursors, col)
	// Row 1 changes twice in one stream (the second resolves from recent
	// values), row 2 once (resolved by reading the table).
	c.Exec(t, db, "UPDATE doc SET n = 1 WHERE id = 1", "UPDATE doc SET n = 2 WHERE id = 1", "UPDATE doc SET n = 1 WHERE id = 2")
	waitFor(t, "the updates", func() bool {
		return value(col.rows()["doc"]["2"], "n") == int64(1) && value(col.rows()["doc"]["1"], "n") == int64(2)
	})
	r.stop(t)
	if d := diff(lakeState(col, "doc", "body"), want); d != "" {
		t.Fatalf("unchanged TOASTed body lost: %s", d[:min(len(d), 200)])
	}
	// A later transaction changes the body after this one: the earlier
	// change may read the newer value, the lake still ends equal.
	c.Exec(t, db, "UPDATE doc SET n = 3 WHERE id = 2", "UPDATE doc SET body = 'short' WHERE id = 2")
	r = startStream(s, map[string]string{"doc": col.last().Cursors["doc"]}, col)
	want = tableState(t, dsn, "SELECT id::text, body FROM doc")
	waitFor(t, "convergence", func() bool { return diff(lakeState(col, "doc", "body"), want) == "" })
	r.stop(t)
}

// Issue #15 case 14: an update leaves a TOASTed column unchanged, then the
// column is dropped before the stream reads the update. The column reads as
// dropped (NULL) and the stream passes the transaction.
func TestToastUnchangedColumnDropped(t *testing.T) {
	c, db, dsn := newDB(t,
		"CREATE TABLE doc (id int PRIMARY KEY, n int, body text)",
		"ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL",
	)
	big := "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3200) g)"
	c.Exec(t, db, "INSERT INTO doc VALUES (1, 0, "+big+")")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "doc"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "doc")
	c.Exec(t, db, "UPDATE doc SET n = 1 WHERE id = 1", "ALTER TABLE doc DROP COLUMN body", "INSERT INTO doc VALUES (2, 2)")
	r := startStream(s, cursors, col)
	waitFor(t, "the changes after the drop", func() bool {
		select {
		case err := <-r.done:
			t.Fatalf("Stream: %v", err)
		default:
		}
		rows := col.rows()["doc"]
		return value(rows["1"], "n") == int64(1) && value(rows["2"], "n") == int64(2)
	})
	r.stop(t)
	if v := value(col.rows()["doc"]["1"], "body"); v != nil {
		t.Fatalf("dropped body = %.40v, want NULL", v)
	}
}

// TestTruncate is issue 15's case 4 at the source: a TRUNCATE is delivered
// in its transaction's order as a truncate of each table it emptied
// (several at once, CASCADE), the stream goes on and later changes follow.
func TestTruncate(t *testing.T) {
	c, db, dsn := newDB(t,
		"CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY)",
		"CREATE TABLE parent (id int PRIMARY KEY)", "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent)",
		"CREATE TABLE other (id int PRIMARY KEY)")
	names := []string{"a", "b", "parent", "child"}
	var tables []TableConfig
	for _, n := range names {
		tables = append(tables, TableConfig{Name: n})
	}
	s := newSource(t, Config{DSN: dsn, Tables: tables})
	col := &collector{}
	r := startStream(s, copyAll(t, s, col, names...), col)
	defer r.stop(t)
	fill := "INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1), (2); INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1), (2, 2); INSERT INTO other VALUES (1)"
	tests := []struct {
		name string
		sql  string
		// want is the IDs left per table.
		want map[string]string
	}{
		{"one table", "TRUNCATE a", map[string]string{"a": "", "b": "1,2", "parent": "1,2", "child": "1,2"}},
		{"rows before and after in one transaction", "BEGIN; INSERT INTO a VALUES (7); UPDATE b SET id = 3 WHERE id = 1; TRUNCATE a; INSERT INTO a VALUES (8), (9); DELETE FROM a WHERE id = 9; COMMIT",
			map[string]string{"a": "8", "b": "2,3", "parent": "1,2", "child": "1,2"}},
		{"several tables", "TRUNCATE a, b", map[string]string{"a": "", "b": "", "parent": "1,2", "child": "1,2"}},
		{"cascade", "TRUNCATE parent CASCADE", map[string]string{"a": "1,2", "b": "1,2", "parent": "", "child": ""}},
		{"table not linked", "TRUNCATE other", map[string]string{"a": "1,2", "b": "1,2", "parent": "1,2", "child": "1,2"}},
	}
	ids := func() map[string]string {
		out := map[string]string{}
		for _, n := range names {
			var got []int
			for id := range col.rows()[n] {
				if !col.rows()[n][id].Deleted {
					n, _ := strconv.Atoi(id)
					got = append(got, n)
				}
			}
			slices.Sort(got)
			out[n] = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(got)), ","), "[]")
		}
		return out
	}
	for i, tt := range tests {
		c.Exec(t, db, "TRUNCATE a, b, parent, child, other", fill)
		waitFor(t, tt.name+": the tables filled", func() bool {
			return maps.Equal(ids(), map[string]string{"a": "1,2", "b": "1,2", "parent": "1,2", "child": "1,2"})
		})
		c.Exec(t, db, tt.sql, fmt.Sprintf("INSERT INTO other VALUES (%d); INSERT INTO b VALUES (%d)", 100+i, 100+i))
		marker := strconv.Itoa(100 + i)
		waitFor(t, tt.name+": the change after it", func() bool { _, ok := col.rows()["b"][marker]; return ok })
		got := ids()
		got["b"] = strings.TrimSuffix(strings.TrimSuffix(got["b"], marker), ",")
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s: rows %v, want %v", tt.name, got, tt.want)
		}
	}
	// Truncates carry a version in their transaction's order and nothing
	// else; no batch holds one of a table the stream does not deliver.
	col.mu.Lock()
	defer col.mu.Unlock()
	var last int64
	for _, b := range col.batches {
		for _, ch := range b.Changes {
			if ch.Truncate && (ch.ID != "" || ch.Values != nil || ch.Version <= last || !slices.Contains(names, ch.Table)) {
				t.Fatalf("truncate %+v after version %d", ch, last)
			}
			last = max(last, ch.Version)
		}
	}
}

// TestRestartFromCommittedCursor checks what PostgreSQL promises beyond
// the contract suite's at-least-once restart (TestContract/StreamRestart):
// nothing before the committed cursor comes again, and idle batches move
// the cursor past it.
func TestRestartFromCommittedCursor(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY, v int)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "t")
	r := startStream(s, cursors, col)
	c.Exec(t, db, "INSERT INTO t VALUES (1, 1)")
	waitFor(t, "row 1", func() bool { _, ok := col.rows()["t"]["1"]; return ok })
	r.stop(t)
	cursor := col.last().Cursors["t"]
	c.Exec(t, db, "INSERT INTO t VALUES (2, 2)", "UPDATE t SET v = 10 WHERE id = 1")

	again := &collector{}
	r = startStream(s, map[string]string{"t": cursor}, again)
	waitFor(t, "the changes made while stopped", func() bool { return value(again.rows()["t"]["1"], "v") == int64(10) })
	// Idle streams report fresh cursors.
	waitFor(t, "an idle batch", func() bool { return len(again.last().Changes) == 0 })
	r.stop(t)
	for _, b := range again.batches {
		for _, ch := range b.Changes {
			if ch.ID == "1" && value(ch, "v") == int64(1) {
				t.Fatal("a change before the committed cursor was delivered again")
			}
		}
	}
	before, _ := pglogrepl.ParseLSN(cursor)
	if after, _ := pglogrepl.ParseLSN(again.last().Cursors["t"]); after <= before {
		t.Fatalf("idle batch cursor %s does not advance past %s", again.last().Cursors["t"], cursor)
	}
}

func TestSchemaChanges(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY, v varchar(5), gone int)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "t")
	r := startStream(s, cursors, col)
	c.Exec(t, db, "INSERT INTO t VALUES (1, 'a', 1)")
	waitFor(t, "row 1", func() bool { _, ok := col.rows()["t"]["1"]; return ok })
	c.Exec(t, db, "ALTER TABLE t ADD COLUMN extra text, DROP COLUMN gone, ALTER COLUMN v TYPE varchar(10)", "INSERT INTO t VALUES (2, 'b', 'x')")
	waitFor(t, "row 2", func() bool { _, ok := col.rows()["t"]["2"]; return ok })
	col.mu.Lock()
	var evolved bool
	var before []string
	for _, b := range col.batches {
		for _, ch := range b.Changes {
			if ch.ID == "1" {
				before = ch.Columns
			}
			if ch.ID == "2" {
				// The new shape comes with a new Columns slice.
				if !slices.Equal(ch.Columns, []string{"id", "v", "extra"}) || &ch.Columns[0] == &before[0] {
					t.Fatalf("row 2 has Columns %v (row 1 %v)", ch.Columns, before)
				}
				sch := b.Schemas["t"]
				if sch == nil {
					t.Fatal("the batch with the new shape carries no schema")
				}
				v, _ := sch.Column("v")
				_, hasGone := sch.Column("gone")
				_, hasExtra := sch.Column("extra")
				evolved = v.MaxLength == 10 && !hasGone && hasExtra
			}
		}
	}
	col.mu.Unlock()
	if !evolved {
		t.Fatal("schema change not described")
	}
	c.Exec(t, db, "ALTER TABLE t ALTER COLUMN extra TYPE int USING 0", "INSERT INTO t VALUES (3, 'c', 3)")
	var err error
	select {
	case err = <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("Stream did not stop at the type change")
	}
	var re *ReinitError
	if !errors.As(err, &re) || re.Column != "extra" {
		t.Fatalf("Stream = %v, want a ReinitError for column extra", err)
	}
}

// TestStreamWaitsForSlot starts a Stream while another still holds the slot:
// it waits for the slot instead of failing.
func TestStreamWaitsForSlot(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "t")
	first := startStream(s, cursors, &collector{})
	time.Sleep(300 * time.Millisecond)
	second := startStream(s, cursors, col)
	time.Sleep(700 * time.Millisecond)
	first.stop(t)
	c.Exec(t, db, "INSERT INTO t VALUES (1)")
	waitFor(t, "the second stream", func() bool { _, ok := col.rows()["t"]["1"]; return ok })
	second.stop(t)
}

// TestColumnRenames is issue #15's case 5 at the source: a renamed column
// (the key included) is described with Renamed, renames made before one
// delivery are composed, and a drop and an add of the last column is not a
// rename.
func TestColumnRenames(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY, a text, b text)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	col := &collector{}
	r := startStream(s, copyAll(t, s, col, "t"), col)
	defer r.stop(t)
	// The stream describes the table when it starts: the renames come
	// after that.
	c.Exec(t, db, "INSERT INTO t VALUES (0)")
	waitFor(t, "the stream", func() bool { _, ok := col.rows()["t"]["0"]; return ok })
	tests := []struct {
		name string
		sql  string
		want map[string]string
		key  string
	}{
		{"key column", "ALTER TABLE t RENAME COLUMN id TO ident", map[string]string{"id": "ident"}, "ident"},
		{"chain in one transaction", "BEGIN; ALTER TABLE t RENAME COLUMN a TO a2; INSERT INTO t VALUES (100, 'x', 'y'); ALTER TABLE t RENAME COLUMN a2 TO a3; COMMIT", map[string]string{"a": "a3"}, "ident"},
		{"last column", "ALTER TABLE t RENAME COLUMN b TO b2", map[string]string{"b": "b2"}, "ident"},
		{"last column dropped and added", "ALTER TABLE t DROP COLUMN b2; ALTER TABLE t ADD COLUMN b3 text", nil, "ident"},
	}
	for i, tt := range tests {
		id := strconv.Itoa(i + 1)
		c.Exec(t, db, tt.sql, "INSERT INTO t VALUES ("+id+")")
		waitFor(t, tt.name, func() bool { _, ok := col.rows()["t"][id]; return ok })
		// The renames of one step may reach the stream in one description or
		// in several (the chain's two renames are split when the stream reads
		// the first before the transaction commits): compose every
		// description delivered after the previous step's row, up to this
		// step's row.
		col.mu.Lock()
		var got map[string]string
		var key []string
		after := false
		prev := strconv.Itoa(i)
	batches:
		for _, b := range col.batches {
			has := func(id string) bool {
				return slices.ContainsFunc(b.Changes, func(ch source.Change) bool { return ch.ID == id })
			}
			if (after || has(id)) && b.Schemas["t"] != nil {
				got, key = composeRenames(got, b.Schemas["t"].Renamed), b.Schemas["t"].Key
			}
			switch {
			case has(id):
				break batches
			case has(prev):
				after = true
			}
		}
		col.mu.Unlock()
		if !maps.Equal(got, tt.want) || !slices.Equal(key, []string{tt.key}) {
			t.Errorf("%s: Renamed %v, key %v; want %v, [%s]", tt.name, got, key, tt.want, tt.key)
		}
	}
}

// TestVersionsPastPosition65535: in a transaction of more than 65535
// changes, two changes of one row past that position get increasing
// versions (they used to share 0xFFFF, so which one the lake kept was
// arbitrary), all below the next transaction's.
func TestVersionsPastPosition65535(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE big (id int PRIMARY KEY, v text)", "INSERT INTO big VALUES (1, 'start'), (2, 'start')")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "big"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "big")
	r := startStream(s, cursors, col)
	defer r.stop(t)
	c.Exec(t, db, "BEGIN", "INSERT INTO big SELECT g, 'x' FROM generate_series(3, 70002) g",
		"UPDATE big SET v = 'first' WHERE id = 1", "UPDATE big SET v = 'second' WHERE id = 1", "COMMIT")
	c.Exec(t, db, "UPDATE big SET v = 'next' WHERE id = 2")
	waitFor(t, "the transaction after the big one", func() bool { return lakeState(col, "big", "v")["2"] == "next" })
	if got := lakeState(col, "big", "v")["1"]; got != "second" {
		t.Errorf("row 1 is %q, want the transaction's last change (second)", got)
	}
	var one []int64
	var bigMax, next int64
	col.mu.Lock()
	for _, b := range col.batches {
		for _, ch := range b.Changes {
			switch {
			case ch.ID == "1" && len(one) < 3:
				one = append(one, ch.Version)
			case ch.ID == "2" && value(ch, "v") == "next":
				next = ch.Version
			}
			if ch.ID != "2" {
				bigMax = max(bigMax, ch.Version)
			}
		}
	}
	col.mu.Unlock()
	if len(one) != 3 || one[0] >= one[1] || one[1] >= one[2] {
		t.Errorf("versions of row 1 (copy, first, second) %v do not increase", one)
	}
	if bigMax >= next {
		t.Errorf("the big transaction's versions reach %d, the next transaction's change has %d", bigMax, next)
	}
}
