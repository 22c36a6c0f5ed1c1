package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// oddValues are the rows of TestPostgresOddValues: values PostgreSQL allows
// that no decimal(38,s), no 1..9999 date and no NULL can stand for (issue
// #15, cases 7, 8 and 9). Columns: n numeric, n5 numeric(5,2), n40
// numeric(40,2), d date, ts timestamp, tz timestamptz, j jsonb.
var oddValues = []string{
	`1, 1e30, 'NaN', NULL, '0001-01-01 BC', 'infinity', '-infinity', 'null'`,
	`2, 'NaN', 1.5, NULL, '4713-01-01 BC', '4713-01-01 00:00:00 BC', '0044-03-15 12:00:00.5+00 BC', '{"a": null}'`,
	`3, 'Infinity', NULL, 12345678901234567890123456789012345678.91, '12345-06-07', '294247-01-10 04:00:54.775806', '10000-01-01 00:00:00+00', NULL`,
	`4, '-Infinity', NULL, NULL, '5874897-12-31', '294276-12-31 23:59:59.999999', 'infinity', '[null]'`,
	`5, 0.000000000000000000000000000001, NULL, NULL, 'infinity', '-infinity', NULL, '0'`,
}

// oddWant is what the lake database answers for the row of each Id, as
// DuckDB casts each value to text: numeric as PostgreSQL's exact text, BC
// dates in DuckDB's "(BC)" notation, infinities kept, jsonb 'null' a JSON
// document, not NULL. numeric(5,2) NaN is NULL: no decimal holds it.
var oddWant = []string{
	"1,1000000000000000000000000000000,,,0001-01-01 (BC) 00:00:00,infinity,-infinity,null,false,VARCHAR,1e+30",
	"2,NaN,1.50,,4713-01-01 (BC) 00:00:00,4713-01-01 (BC) 00:00:00,0044-03-15 (BC) 12:00:00.5+00,\"{\"\"a\"\": null}\",false,VARCHAR,NaN",
	"3,Infinity,,12345678901234567890123456789012345678.91,12345-06-07 00:00:00,294247-01-10 04:00:54.775806,10000-01-01 00:00:00+00,,true,VARCHAR,Infinity",
	"4,-Infinity,,,infinity,infinity,infinity,[null],false,VARCHAR,-Infinity",
	"5,0.000000000000000000000000000001,,,infinity,-infinity,,0,false,VARCHAR,1e-30",
}

// TestPostgresOddValues is issue #15's cases 7, 8 and 9: an unconstrained
// numeric out of decimal(38,10)'s range, NaN and ±Infinity; BC dates and
// years past 9999; timestamp ±infinity; jsonb 'null'. Every value reaches
// the lake by the initial copy and by the change stream, the table stays
// Completed, and each value reads back distinguishable from NULL and from
// the others (docs/postgres.md, type table).
func TestPostgresOddValues(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "odd")
	c.Exec(t, "odd", `CREATE TABLE odd (id integer PRIMARY KEY, n numeric, n5 numeric(5,2), n40 numeric(40,2),
		d date, ts timestamp, tz timestamptz, j jsonb)`)
	for _, v := range oddValues {
		c.Exec(t, "odd", "INSERT INTO odd VALUES ("+v+")")
	}
	dir := t.TempDir()
	profile := filepath.Join(dir, "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.odd")
	check := func(how string, offset int) {
		t.Helper()
		rows := queryCSV(t, profile, fmt.Sprintf(`SELECT id_2 - %d, n, n5, n40, CAST(d AS VARCHAR), CAST(ts AS VARCHAR), CAST(tz AS VARCHAR),
			CAST(j AS VARCHAR), j IS NULL, typeof(n), CAST(n AS DOUBLE) FROM "public.odd" WHERE id_2 > %d AND id_2 <= %d ORDER BY id_2`,
			offset, offset, offset+len(oddWant)))
		var got []string
		for _, r := range rows {
			var b strings.Builder
			for i, f := range r {
				if i > 0 {
					b.WriteByte(',')
				}
				if strings.ContainsAny(f, `",`) {
					f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
				}
				b.WriteString(f)
			}
			got = append(got, b.String())
		}
		if strings.Join(got, "\n") != strings.Join(oddWant, "\n") {
			t.Errorf("%s: the lake answers\n%s\nwant\n%s", how, strings.Join(got, "\n"), strings.Join(oddWant, "\n"))
		}
		for _, tb := range readStatus(t, profile).Tables {
			if tb.State != "Completed" || tb.Error != "" {
				t.Errorf("%s: table %s is %s: %s", how, tb.Name, tb.State, tb.Error)
			}
		}
	}
	run(t, 0, "sync", "-c", profile, "--once")
	check("after the initial copy", 0)

	for _, v := range oddValues {
		id, rest, _ := strings.Cut(v, ",")
		c.Exec(t, "odd", "INSERT INTO odd VALUES (10"+id+","+rest+")")
	}
	run(t, 0, "sync", "-c", profile, "--once")
	check("after the change stream", 100)

	// The CLI shows infinities and BC years as such, not as DuckDB's
	// extreme microsecond counts.
	out := run(t, 0, "query", "-c", profile, "--format", "csv", `SELECT ts, tz FROM "public.odd" WHERE id_2 IN (1, 2) ORDER BY id_2`)
	if want := "ts,tz\ninfinity,-infinity\n-4712-01-01 00:00:00,-0043-03-15 12:00:00.5Z\n"; out != want {
		t.Errorf("lakelink query prints\n%s\nwant\n%s", out, want)
	}
	// jsonb 'null' prints as null, SQL NULL as NULL, an empty field or
	// the key left out (#15 case 9).
	for format, want := range map[string]string{
		"csv":   "id_2,j\n1,null\n3,\n4,[null]\n",
		"table": "id_2 | j\n-----+-------\n   1 | null\n   3 | NULL\n   4 | [null]\n(3 rows)\n",
		"jsonl": "{\"id_2\":1,\"j\":null}\n{\"id_2\":3}\n{\"id_2\":4,\"j\":[null]}\n",
		"json":  "[\n{\"id_2\":1,\"j\":null},\n{\"id_2\":3},\n{\"id_2\":4,\"j\":[null]}\n]\n",
	} {
		out := run(t, 0, "query", "-c", profile, "--format", format, `SELECT id_2, j FROM public.odd WHERE id_2 IN (1, 3, 4) ORDER BY id_2`)
		if out != want {
			t.Errorf("lakelink query --format %s prints\n%s\nwant\n%s", format, out, want)
		}
	}
}
