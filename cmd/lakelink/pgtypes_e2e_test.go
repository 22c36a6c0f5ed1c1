package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPostgresTypesRoundTrip takes a row of every type of the type table in
// docs/postgres.md from PostgreSQL through the initial copy and through the
// change stream into the lake, and reads it back with SQL. The expected
// answer is testdata/pgtypes.golden (-update rewrites it; review the diff).
func TestPostgresTypesRoundTrip(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "types")
	c.Exec(t, "types",
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE alltypes (
			id integer PRIMARY KEY,
			c_smallint smallint, c_integer integer, c_bigint bigint,
			c_numeric numeric(38,10), c_money_like numeric(12,2), c_numeric_free numeric,
			c_real real, c_double double precision,
			c_text text, c_varchar varchar(20), c_char char(5),
			c_boolean boolean, c_date date, c_time time, c_timestamp timestamp, c_timestamptz timestamptz,
			c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
			c_int_array integer[], c_text_array text[], c_enum mood)`,
		`INSERT INTO alltypes VALUES
			(1, 1, 2, 3, 1.5, 9.99, 3.14159, 1.5, 2.25, 'plain', 'short', 'ab', true, '2024-02-29', '13:14:15.5',
			 '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02', '1 year 2 mons 3 days 04:05:06', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
			 '{"b": 1, "a": [1, 2]}', '{"b": 1, "a": [1, 2]}', '\x00ff10', '{1,2,NULL}', '{"x","y z","q\"uote"}', 'happy'),
			(2, -32768, -2147483648, -9223372036854775808, -9999999999999999999999999999.9999999999, -9999999999.99, 0.000000000000000000001,
			 -3.4e38, 1.7976931348623157e308, e'quote " comma , newline \n emoji 🚀 tab \t end', 'ü€😀', '     ', false, '0001-01-01', '00:00:00',
			 '1900-01-01 00:00:00', '9999-12-31 23:59:59.999999+00', '-1 days', '00000000-0000-0000-0000-000000000000',
			 '[]', '{}', '', '{}', '{}', 'sad'),
			(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	)
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	os.WriteFile(profile, []byte("name: types\nsource:\n  type: postgres\n  dsn: \""+dsn+"\"\nlake:\n  path: ./lake\ntables:\n  - name: public.alltypes\n"), 0o644)
	run(t, 0, "sync", "-c", profile, "--once")

	// Row 4 arrives through the change stream, row 1 changes there.
	c.Exec(t, "types",
		`INSERT INTO alltypes (id, c_text, c_numeric, c_timestamptz, c_text_array) VALUES (4, 'streamed', 12345678901234567890.0123456789, '2030-06-15 12:00:00+00', ARRAY['a'])`,
		`UPDATE alltypes SET c_text = 'changed', c_bigint = 9223372036854775807 WHERE id = 1`)
	run(t, 0, "sync", "-c", profile, "--once")

	got := run(t, 0, "query", "-c", profile, "--format", "json", `SELECT * EXCLUDE (SinkCreatedOn, SinkModifiedOn, versionnumber) FROM public.alltypes ORDER BY id`)
	golden := filepath.Join("testdata", "pgtypes.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("lake answer differs from %s:\n got: %s\nwant: %s", golden, got, want)
	}
}
