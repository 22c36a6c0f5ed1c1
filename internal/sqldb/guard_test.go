package sqldb

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
)

// TestReadOnly (issue #15, case 16): every way found to write a file, read
// outside the lake, load an extension or unlock the configuration through
// Query is refused with a message naming what and why, nothing of it runs,
// and the lake folder is unchanged. Queries keep working.
func TestReadOnly(t *testing.T) {
	modes(t, func(t *testing.T, open func(l *testLake) *DB) {
		l := newTestLake(t)
		tab := nameTable("account")
		tab.Files = []lake.File{l.write("account/2020_1_1.csv", row(1, "a", 1, false)+row(2, "b", 1, false))}
		l.commit(tab)
		l.write("_lakelink/log/00000000000000000001.json", "{}")
		db := open(l)
		root := l.st.Root()
		log := filepath.Join(root, "_lakelink", "log", "00000000000000000002.json")
		before := tree(t, root)

		for _, c := range []struct {
			name, sql string
			// what is the refused thing a *NotAllowedError names; "" when
			// DuckDB's permission error (a read outside the lake) is expected.
			what string
		}{
			{"copy into the lake log", "COPY (SELECT 'garbage') TO " + quoteString(log) + " (FORMAT csv, HEADER false)", "COPY"},
			{"copy after comments", "-- note\n/* c */ COPY (SELECT 1) TO " + quoteString(log), "COPY"},
			{"insert after with", "WITH t AS (SELECT 1) INSERT INTO OptionsetMetadata SELECT 'a', 'b', 1, false, 1033, 'c' FROM t", "a statement that is not a SELECT"},
			{"copy a table", "COPY account TO " + quoteString(filepath.Join(root, "x.parquet")) + " (FORMAT parquet)", "COPY"},
			{"export database", "EXPORT DATABASE " + quoteString(filepath.Join(root, "export")), "EXPORT"},
			{"read /etc/passwd", "SELECT * FROM read_csv('/etc/passwd')", ""},
			{"read up from the lake", "SELECT * FROM read_text(" + quoteString(root+"/../../etc/passwd") + ")", ""},
			{"replacement scan outside", "SELECT * FROM '/etc/passwd.csv'", ""},
			{"glob outside", "SELECT * FROM glob('/etc/*')", ""},
			{"attach", "ATTACH " + quoteString(filepath.Join(root, "x.duckdb")) + " AS x", "ATTACH"},
			{"attach and create", "ATTACH " + quoteString(filepath.Join(root, "x.duckdb")) + " AS x; CREATE TABLE x.t AS SELECT 1", "more than one statement"},
			{"detach", "DETACH memory", "DETACH"},
			{"install", "INSTALL httpfs", "INSTALL"},
			{"load", "LOAD httpfs", "LOAD"},
			{"enable external access", "SET enable_external_access = true", "SET"},
			{"unlock", "SET lock_configuration = false", "SET"},
			{"reset", "RESET allowed_directories", "RESET"},
			{"set variable", "SET VARIABLE x = 1", "SET"},
			{"pragma setting", "PRAGMA enable_profiling = 'json'", "PRAGMA"},
			{"pragma profile file", "PRAGMA profiling_output = " + quoteString(filepath.Join(root, "p.json")), "PRAGMA"},
			{"pragma query", "PRAGMA table_info('account')", "PRAGMA"},
			{"pragma call", "PRAGMA force_checkpoint", "PRAGMA"},
			{"two selects", "SELECT 1; SELECT 2", "more than one statement (2)"},
			{"select then copy", "SELECT 1; COPY (SELECT 1) TO " + quoteString(log), "more than one statement"},
			{"copy then select", "COPY (SELECT 1) TO " + quoteString(log) + "; SELECT 1", "more than one statement"},
			{"create table", "CREATE TABLE t AS SELECT 1", "CREATE"},
			{"create view", "CREATE OR REPLACE VIEW account AS SELECT 1", "CREATE"},
			{"create macro", "CREATE MACRO m(x) AS x + 1", "CREATE"},
			{"insert into metadata", "INSERT INTO OptionsetMetadata VALUES ('a', 'b', 1, false, 1033, 'c')", "INSERT"},
			{"delete metadata", "DELETE FROM OptionsetMetadata", "DELETE"},
			{"update metadata", "UPDATE OptionsetMetadata SET Option = 2", "UPDATE"},
			{"drop view", "DROP VIEW account", "DROP"},
			{"alter", "ALTER VIEW account RENAME TO b", "ALTER"},
			{"call logging", "CALL enable_logging(storage = 'file', storage_path = " + quoteString(filepath.Join(root, "logs")) + ")", "CALL"},
			{"select logging", "SELECT * FROM enable_logging(storage = 'file', storage_path = " + quoteString(filepath.Join(root, "logs")) + ")", "the function enable_logging"},
			{"logging in a subquery", "SELECT (SELECT count(*) FROM system.main.\"ENABLE_LOGGING\"())", "the function enable_logging"},
			{"profiling", "SELECT * FROM enable_profiling()", "the function enable_profiling"},
			{"sql as a value", "SELECT * FROM query('SELECT 1')", "the function query"},
			{"serialized sql", "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))", "the function json_execute_serialized_sql"},
			{"explain analyze copy", "EXPLAIN ANALYZE COPY (SELECT 1) TO " + quoteString(log), "EXPLAIN"},
			{"begin", "BEGIN", "BEGIN"},
			{"prepare", "PREPARE p AS SELECT 1", "PREPARE"},
			{"checkpoint statement", "CHECKPOINT", "CHECKPOINT"},
			{"vacuum", "VACUUM", "VACUUM"},
		} {
			t.Run(c.name, func(t *testing.T) {
				rows, err := db.Query(t.Context(), c.sql)
				if err == nil {
					rows.Close()
					t.Fatalf("%s ran; want it refused", c.sql)
				}
				var na *NotAllowedError
				switch {
				case c.what == "":
					if !strings.Contains(err.Error(), "reads only the lake") || !strings.Contains(err.Error(), "Permission Error") {
						t.Errorf("%s: %v; want the read outside the lake refused", c.sql, err)
					}
				case !errors.As(err, &na):
					t.Errorf("%s: %v; want a NotAllowedError", c.sql, err)
				case na.What != c.what || na.Why == "":
					t.Errorf("%s: refused %q (%s); want %q with a reason", c.sql, na.What, na.Why, c.what)
				}
				t.Log(err)
			})
		}
		if after := tree(t, root); !slices.Equal(before, after) {
			t.Errorf("the lake changed: before %q, after %q", before, after)
		}
		for _, q := range []struct{ sql, want string }{
			{"SELECT count(*) FROM account", "2"},
			{"FROM account SELECT name ORDER BY name LIMIT 1;", "a"},
			{"WITH t AS (SELECT name FROM account) SELECT count(*) FROM t", "2"},
			{"SELECT name FROM account WHERE Id = $1", "b"},
			{"SELECT count(*) FROM (DESCRIBE account)", "8"},
			{"SELECT count(*) FROM (SHOW TABLES) WHERE name = 'account'", "1"},
			{"SELECT count(*) FROM (SUMMARIZE account)", "8"},
			{"SELECT count(*) FROM pragma_table_info('account')", "8"},
			{"SELECT count(*) FROM read_csv(" + quoteString(filepath.Join(root, "account", "2020_1_1.csv")) + ", header = false)", "2"},
			{"-- a comment\nSELECT 1 /* another */", "1"},
			{"SELECT current_setting('lock_configuration')", "true"},
		} {
			var args []any
			if strings.Contains(q.sql, "$1") {
				args = append(args, id(2))
			}
			if got := query(t, db, q.sql, args...); !slices.Equal(got, []string{q.want}) {
				t.Errorf("%s: %q, want %q", q.sql, got, q.want)
			}
		}
		for _, q := range []string{"SHOW TABLES", "DESCRIBE account", "SUMMARIZE account"} {
			query(t, db, q)
		}
	})
}

// TestSyntaxErrorReported: SQL that does not parse fails with DuckDB's
// message, not a refusal.
func TestSyntaxErrorReported(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	for _, q := range []string{"SELEC 1", "SELECT 1 FROM", "COPY (SELECT 1 TO 'x'"} {
		_, err := db.Query(t.Context(), q)
		var na *NotAllowedError
		if err == nil || errors.As(err, &na) || !strings.Contains(err.Error(), "Parser Error") {
			t.Errorf("%q: %v; want DuckDB's parser error", q, err)
		}
	}
	if _, err := db.Query(t.Context(), "  ;  "); err == nil {
		t.Error("an empty statement ran")
	}
}

// TestConfigurationLocked: the configuration holds even for statements that
// do not go through Query's check (the database's own).
func TestConfigurationLocked(t *testing.T) {
	l := newTestLake(t)
	db := l.openWith(Options{CacheDir: t.TempDir()})
	for _, q := range []string{
		"SET enable_external_access = true",
		"SET allowed_directories = ['/']",
		"SET lock_configuration = false",
		"SET autoload_known_extensions = true",
		"SET TimeZone = 'Europe/Paris'",
		"INSTALL httpfs",
		"SELECT * FROM read_csv('/etc/passwd')",
	} {
		if _, err := db.sql.ExecContext(t.Context(), q); err == nil {
			t.Errorf("%s ran on the locked database", q)
		}
	}
	// Every connection of the pool has the settings, the time zone included.
	for range 4 {
		c, err := db.sql.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var tz string
		if err := c.QueryRowContext(t.Context(), "SELECT current_setting('TimeZone')").Scan(&tz); err != nil || tz != "UTC" {
			t.Errorf("a connection's time zone: %q, %v", tz, err)
		}
	}
}

// reviewedTableFunctions are DuckDB 1.5's table functions (and table
// macros) that a SELECT may call: they read the catalog, generate rows,
// or read files (which the configuration keeps inside the lake).
var reviewedTableFunctions = []string{
	"check_peg_parser", "checkpoint", "duckdb_approx_database_count", "duckdb_columns", "duckdb_connection_count",
	"duckdb_constraints", "duckdb_coordinate_systems", "duckdb_databases", "duckdb_dependencies", "duckdb_extensions",
	"duckdb_external_file_cache", "duckdb_functions", "duckdb_indexes", "duckdb_keywords", "duckdb_log_contexts",
	"duckdb_logs", "duckdb_logs_parsed", "duckdb_memory", "duckdb_optimizers", "duckdb_prepared_statements",
	"duckdb_profiling_settings", "duckdb_schemas", "duckdb_secret_types", "duckdb_secrets", "duckdb_sequences",
	"duckdb_settings", "duckdb_table_sample", "duckdb_tables", "duckdb_temporary_files", "duckdb_types",
	"duckdb_variables", "duckdb_views", "force_checkpoint", "generate_series", "glob", "histogram",
	"histogram_values", "icu_calendar_names", "json_each", "json_tree", "parquet_bloom_probe",
	"parquet_file_metadata", "parquet_full_metadata", "parquet_kv_metadata", "parquet_metadata", "parquet_scan",
	"parquet_schema", "pg_timezone_names", "pragma_collations", "pragma_database_size", "pragma_metadata_info",
	"pragma_platform", "pragma_show", "pragma_storage_info", "pragma_table_info", "pragma_user_agent",
	"pragma_version", "range", "read_blob", "read_csv", "read_csv_auto", "read_duckdb", "read_json",
	"read_json_auto", "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
	"read_ndjson_objects", "read_parquet", "read_text", "repeat", "repeat_row", "seq_scan", "sniff_csv",
	"sql_auto_complete", "summary", "test_all_types", "test_vector_types", "unnest", "which_secret",
}

// TestEveryTableFunctionReviewed: each table function DuckDB offers is
// either reviewed as harmless or denied, so that a DuckDB upgrade that
// brings new ones fails here until they are reviewed.
func TestEveryTableFunctionReviewed(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	for _, name := range query(t, db, "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro') ORDER BY 1") {
		if _, denied := deniedFunctions[name]; !denied && !slices.Contains(reviewedTableFunctions, name) {
			t.Errorf("table function %s is neither reviewed nor denied (guard.go)", name)
		}
	}
}

// tree lists the files under root with their sizes.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %s %d", strings.TrimPrefix(p, root), fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
