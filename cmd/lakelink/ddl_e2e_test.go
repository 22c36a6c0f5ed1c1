package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestPostgresTruncate is issue #15's case 4: a TRUNCATE under a running
// `lakelink sync` empties the table in the lake in the commit of its
// transaction (rows the transaction inserts after it stay), for one table,
// several in one statement, CASCADE and inside a transaction large enough
// to be staged; the tables stay Completed, nothing is copied afresh, and a
// change of another table reaches the lake within a second after each.
func TestPostgresTruncate(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults",
		`CREATE TABLE busy (id int PRIMARY KEY, v text)`,
		`CREATE TABLE t1 (id int PRIMARY KEY, v text)`,
		`CREATE TABLE t2 (id int PRIMARY KEY, v text)`,
		`CREATE TABLE parent (id int PRIMARY KEY, v text)`,
		`CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent)`,
	)
	fill := `INSERT INTO t1 SELECT g, 'v' FROM generate_series(1, 1000) g; INSERT INTO t2 SELECT g, 'v' FROM generate_series(1, 10) g;
		INSERT INTO parent SELECT g, 'v' FROM generate_series(1, 5) g; INSERT INTO child SELECT g, g FROM generate_series(1, 5) g`
	c.Exec(t, "faults", fill)
	tables := []string{"public.busy", "public.t1", "public.t2", "public.parent", "public.child"}
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, tables...)
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, tables)
	countIs(t, profile, "public.t1", 1000)
	copied := errb.Len()

	tests := []struct {
		name string
		sql  string
		// want is each table's count after it.
		want map[string]int
		// large: the transaction takes the stream a while, and a change
		// of another table committed after it waits for it.
		large bool
	}{
		{"one table", `TRUNCATE t1`, map[string]int{"t1": 0, "t2": 10, "parent": 5, "child": 5}, false},
		{"several tables", `TRUNCATE t1, t2`, map[string]int{"t1": 0, "t2": 0, "parent": 5, "child": 5}, false},
		{"cascade", `TRUNCATE parent CASCADE`, map[string]int{"t1": 1000, "t2": 10, "parent": 0, "child": 0}, false},
		// 100 000 rows before the TRUNCATE: the source delivers the
		// transaction in parts, which the engine stages (case 10).
		{"in a staged transaction", `BEGIN; UPDATE t2 SET v = 'w'; INSERT INTO t1 SELECT g, 'v' FROM generate_series(1001, 101000) g; TRUNCATE t1;
			INSERT INTO t1 VALUES (1, 'after'); COMMIT`, map[string]int{"t1": 1, "t2": 10, "parent": 5, "child": 5}, true},
	}
	busy := 0
	for _, tt := range tests {
		c.Exec(t, "faults", `TRUNCATE t1, t2, parent, child`, fill)
		countIs(t, profile, "public.t1", 1000)
		countIs(t, profile, "public.child", 5)
		c.Exec(t, "faults", tt.sql)
		if tt.large {
			countIs(t, profile, "public.t1", tt.want["t1"])
		}
		busy++
		visibleWithin(t, c, profile, busy, time.Second)
		for table, n := range tt.want {
			countIs(t, profile, "public."+table, n)
		}
		if !tt.large {
			continue
		}
		if got := queryCSV(t, profile, `SELECT string_agg(v, ',') FROM "public.t1"`)[0][0]; got != "after" {
			t.Errorf("%s: t1 holds %q, want the row inserted after the TRUNCATE (after)", tt.name, got)
		}
	}
	s := allCompleted(t, profile, tables)
	for _, tb := range tables {
		if _, e := tableStatus(s, tb); e != "" {
			t.Errorf("%s: error %q", tb, e)
		}
	}
	noRecopy(t, bytes.NewBufferString(errb.String()[copied:]))
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// visibleWithin inserts row id into busy (id, v) at the source and fails t
// unless SQL counts id rows of it within limit. The time taken is up to the
// start of the first query that sees it, so that a query's own run time
// (a process start) is not counted as the lake's.
func visibleWithin(t *testing.T, c *pgtest.Cluster, profile string, id int, limit time.Duration) {
	t.Helper()
	start := time.Now()
	c.Exec(t, "faults", fmt.Sprintf(`INSERT INTO busy VALUES (%d, 'x')`, id))
	for {
		asked := time.Now()
		if queryCSV(t, profile, `SELECT count(*) FROM "public.busy"`)[0][0] == fmt.Sprint(id) {
			took := asked.Sub(start)
			t.Logf("busy row %d visible within %s", id, took.Round(time.Millisecond))
			if took > limit {
				t.Errorf("a change of busy took %s to reach the lake, want under %s", took.Round(time.Millisecond), limit)
			}
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("busy row %d not in the lake after 30 s", id)
		}
	}
}

// TestPostgresColumnRename is issue #15's case 5: a column renamed at the
// source under a running sync is renamed in the lake's layout in place, so
// every row, old or new, reads under the new name and the old name is gone
// (model.json too); a rename of the last column (which pgoutput shows like
// a drop and an add) is told apart through the catalog, and a real drop and
// add of the last column stays one.
func TestPostgresColumnRename(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults", `CREATE TABLE busy (id int PRIMARY KEY, v text)`,
		`CREATE TABLE evo (id int PRIMARY KEY, c1 text, c2 text, c3 text)`,
		`INSERT INTO evo SELECT g, 'a' || g, 'b' || g, 'c' || g FROM generate_series(1, 3) g`)
	tables := []string{"public.busy", "public.evo"}
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, tables...)
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, tables)
	countIs(t, profile, "public.evo", 3)
	// The stream runs (it describes the tables when it starts).
	visibleWithin(t, c, profile, 1, 10*time.Second)

	steps := []struct {
		name, sql string
		// query and want: what SQL reads once the step's row 4+i is in.
		query, want string
	}{
		{"rename", `ALTER TABLE evo RENAME COLUMN c1 TO c1r`, `SELECT string_agg(c1r, ',' ORDER BY c2) FROM "public.evo"`, "a1,a2,a3,n4"},
		{"rename the last column", `ALTER TABLE evo RENAME COLUMN c3 TO c3r`, `SELECT string_agg(c3r, ',' ORDER BY c2) FROM "public.evo"`, "c1,c2,c3,n4,n5"},
		{"drop and add the last column", `ALTER TABLE evo DROP COLUMN c3r; ALTER TABLE evo ADD COLUMN c3n text`, `SELECT string_agg(coalesce(c3n, '-'), ',' ORDER BY c2) FROM "public.evo"`, "-,-,-,-,-,n6"},
	}
	for i, st := range steps {
		id := 4 + i
		c.Exec(t, "faults", st.sql, fmt.Sprintf(`UPDATE evo SET c2 = c2 WHERE id = 1; INSERT INTO evo SELECT %d, 'n%d', 'n%d', 'n%d'`, id, id, id, id))
		countIs(t, profile, "public.evo", id)
		if got := queryCSV(t, profile, st.query)[0][0]; got != st.want {
			t.Errorf("%s: %s = %q, want %q", st.name, st.query, got, st.want)
		}
	}
	if _, stderr, code := runExit(t, "query", "-c", profile, `SELECT c1 FROM "public.evo"`); code == 0 {
		t.Error("the old name c1 still reads after the rename")
	} else if !strings.Contains(stderr, "c1") {
		t.Errorf("select of the old name: %s", stderr)
	}
	model, err := os.ReadFile(filepath.Join(dir, "lake", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(model), `"c1r"`) || strings.Contains(string(model), `"c1"`) {
		t.Errorf("model.json does not show the rename c1 -> c1r")
	}
	s := allCompleted(t, profile, tables)
	if _, e := tableStatus(s, "public.evo"); e != "" {
		t.Errorf("evo: error %q", e)
	}
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// evoProfile writes a profile over public.evo partitioned by column.
func evoProfile(t *testing.T, profile, dsn, column string) {
	t.Helper()
	body := fmt.Sprintf("name: faults\nsource:\n  type: postgres\n  dsn: %q\nlake:\n  path: ./lake\ntables:\n  - name: public.evo\n    partition_column: %s\n", dsn, column)
	if err := os.WriteFile(profile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresColumnRenameWhileStopped is issue #15's case 5 for renames
// lakelink does not see happen: columns renamed while sync is stopped
// (the partition column among them, which the profile still names by its
// old name, and an old name given to a new column) are renamed in the
// lake in place at the next start, matched by their attnums, so old and
// new rows read under the new names, the old names fail, and rows stay
// partitioned by the renamed partition column.
func TestPostgresColumnRenameWhileStopped(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults", `CREATE TABLE evo (id int PRIMARY KEY, c1 text, c2 text, created timestamp)`,
		`INSERT INTO evo SELECT g, 'a' || g, 'b' || g, '2024-03-01' FROM generate_series(1, 3) g`)
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	evoProfile(t, profile, dsn, "created")
	tables := []string{"public.evo"}
	cmd, _ := startSync(t, profile)
	allCompleted(t, profile, tables)
	countIs(t, profile, "public.evo", 3)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)

	c.Exec(t, "faults", `ALTER TABLE evo RENAME COLUMN c1 TO c1r`,
		`ALTER TABLE evo RENAME COLUMN c2 TO c2x`,
		`ALTER TABLE evo ADD COLUMN c2 text`,
		`ALTER TABLE evo RENAME COLUMN created TO created_at`,
		`UPDATE evo SET c1r = 'a1u' WHERE id = 1`,
		// Enough rows for the one-shot sync below to compact them.
		`INSERT INTO evo SELECT g, 'n' || g, 'm' || g, '2025-06-01', 'x' || g FROM generate_series(4, 50003) g`)
	cmd, errb := startSync(t, profile)
	countIs(t, profile, "public.evo", 50003)
	for query, want := range map[string]string{
		`SELECT string_agg(c1r, ',' ORDER BY id_2) FROM public.evo WHERE id_2 <= 4`:                    "a1u,a2,a3,n4",
		`SELECT string_agg(c2x, ',' ORDER BY id_2) FROM public.evo WHERE id_2 <= 4`:                    "b1,b2,b3,m4",
		`SELECT string_agg(coalesce(c2, '-'), ',' ORDER BY id_2) FROM public.evo WHERE id_2 <= 4`:      "-,-,-,x4",
		`SELECT string_agg(year(created_at)::text, ',' ORDER BY id_2) FROM public.evo WHERE id_2 <= 4`: "2024,2024,2024,2025",
		`SELECT count(*) FROM pragma_table_info('public.evo') WHERE name IN ('c1', 'created')`:         "0",
	} {
		if got := queryCSV(t, profile, query)[0][0]; got != want {
			t.Errorf("%s = %q, want %q", query, got, want)
		}
	}
	for _, old := range []string{"c1", "created"} {
		if _, stderr, code := runExit(t, "query", "-c", profile, "SELECT "+old+" FROM public.evo"); code == 0 {
			t.Errorf("the old name %s still reads after the rename", old)
		} else if !strings.Contains(stderr, old) {
			t.Errorf("select of the old name %s: %s", old, stderr)
		}
	}
	s := allCompleted(t, profile, tables)
	if _, e := tableStatus(s, "public.evo"); e != "" {
		t.Errorf("evo: error %q", e)
	}
	alive(t, cmd, errb)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	if !strings.Contains(errb.String(), "partition_column") || !strings.Contains(errb.String(), "created_at") {
		t.Errorf("no warning that the profile's partition_column names the old column:\n%s", errb)
	}

	// The compacted table is partitioned by the renamed column (a file
	// per year of created_at; without it, rows would go to partition 1).
	run(t, 0, "sync", "-c", profile, "--once")
	files, err := os.ReadDir(filepath.Join(dir, "lake", "public.evo"))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, f := range files {
		if !f.IsDir() {
			parts = append(parts, f.Name())
		}
	}
	if !slices.Equal(parts, []string{"2024.csv", "2025.csv"}) {
		t.Errorf("public.evo's partition files are %v, want 2024.csv and 2025.csv (by created_at)", parts)
	}
}

// TestPostgresPartitionColumnRename is issue #15's case 5 for the
// partition column: renamed under a running sync, it keeps partitioning
// the table under its new name and a warning asks for the profile to name
// it; the profile's old name still works after a restart (the column is
// found by its id), and the new name once the profile is updated, with
// nothing copied afresh.
func TestPostgresPartitionColumnRename(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "faults")
	c.Exec(t, "faults", `CREATE TABLE evo (id int PRIMARY KEY, created timestamp)`,
		`INSERT INTO evo VALUES (1, '2024-03-01')`)
	profile := filepath.Join(t.TempDir(), "link.yaml")
	evoProfile(t, profile, dsn, "created")
	tables := []string{"public.evo"}
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, tables)
	countIs(t, profile, "public.evo", 1)
	c.Exec(t, "faults", `INSERT INTO evo VALUES (2, '2025-01-01')`)
	countIs(t, profile, "public.evo", 2)
	c.Exec(t, "faults", `ALTER TABLE evo RENAME COLUMN created TO created_at`, `INSERT INTO evo VALUES (3, '2025-06-01')`)
	countIs(t, profile, "public.evo", 3)
	// A restart of the stream in the same process describes the table
	// again: the stale name must not stop it.
	c.Exec(t, "faults", `SELECT pg_terminate_backend(pid) FROM pg_stat_replication`, `INSERT INTO evo VALUES (4, '2025-06-02')`)
	countIs(t, profile, "public.evo", 4)
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	log := errb.String()
	if !strings.Contains(log, "partition column was renamed") || !strings.Contains(log, "created_at") {
		t.Errorf("no warning that the partition column was renamed:\n%s", log)
	}
	for i, column := range []string{"created", "created_at"} {
		evoProfile(t, profile, dsn, column)
		cmd, errb = startSync(t, profile)
		c.Exec(t, "faults", fmt.Sprintf(`INSERT INTO evo VALUES (%d, '2025-07-01')`, 5+i))
		countIs(t, profile, "public.evo", 5+i)
		s := allCompleted(t, profile, tables)
		if state, e := tableStatus(s, "public.evo"); e != "" {
			t.Errorf("partition_column %s: evo is %s: %s", column, state, e)
		}
		if got := queryCSV(t, profile, `SELECT string_agg(year(created_at)::text, ',' ORDER BY id_2) FROM public.evo`)[0][0]; !strings.HasPrefix(got, "2024,2025,2025,2025,2025") {
			t.Errorf("partition_column %s: created_at years %s", column, got)
		}
		stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
		warned := strings.Contains(errb.String(), "partition_column")
		if warned != (column == "created") {
			t.Errorf("partition_column %s: warned %v:\n%s", column, warned, errb)
		}
		noRecopy(t, errb)
	}
}
