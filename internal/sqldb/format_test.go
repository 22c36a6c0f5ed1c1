package sqldb

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// formatQuery covers the types a lake query returns, with odd values.
const formatQuery = `SELECT * FROM (VALUES
	(1, 'plain', CAST(12.50 AS DECIMAL(38,2)), CAST(1.5 AS DOUBLE), true,
	 TIMESTAMP '2020-01-01 00:15:00.123456', TIMESTAMPTZ '2020-01-01 05:30:00+05:30',
	 CAST('6f9619ff-8b86-d011-b42d-00c04fc964ff' AS UUID), CAST('{"a":[1,"x"]}' AS JSON), DATE '2020-01-01', [1, 2]),
	(2, 'say "hi", then, go', CAST(-0.01 AS DECIMAL(38,2)), CAST('NaN' AS DOUBLE), false,
	 TIMESTAMP '0001-01-01 00:00:00', TIMESTAMPTZ '9999-12-31 23:59:59.999999+00',
	 NULL, CAST('[]' AS JSON), NULL, []),
	(3, 'line1' || chr(10) || 'line2' || chr(9) || 'tab \ back', CAST(123456789012345678901234567890123456.78 AS DECIMAL(38,2)),
	 CAST('-Infinity' AS DOUBLE), NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(4, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(5, '中文 😀 wide', 0, 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(7, 'infinite', NULL, NULL, NULL, TIMESTAMP 'infinity', TIMESTAMPTZ '-infinity', NULL, NULL, DATE 'infinity', NULL),
	(8, 'BC and five digits', NULL, NULL, NULL, TIMESTAMP '-0001-03-01 12:00:00', TIMESTAMPTZ '12345-06-07 00:00:00+00', NULL, NULL, DATE '-infinity', NULL),
	(9, 'the JSON document null', NULL, NULL, NULL, NULL, NULL, NULL, CAST('null' AS JSON), NULL, NULL),
	(10, 'JSON as written', NULL, NULL, NULL, NULL, NULL, NULL, CAST('{"b":"<&>","a":12345678901234567890.125}' AS JSON), NULL, NULL)
) AS t(n, "text", amount, ratio, flag, stamp, stamp_tz, ref, doc, day, list) ORDER BY n`

func TestFormatGolden(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := db.Print(t.Context(), &buf, formatQuery, format); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "format", format+".golden"), buf.Bytes())
			switch format {
			case "csv":
				recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
				if err != nil || len(recs) != 11 {
					t.Errorf("CSV output does not parse back into 11 records: %d, %v", len(recs), err)
				}
			case "json":
				var v []map[string]any
				if err := json.Unmarshal(buf.Bytes(), &v); err != nil || len(v) != 10 {
					t.Errorf("JSON output is not an array of 10 objects: %v", err)
				}
			case "jsonl":
				for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("JSON line %d is not valid: %s", i+1, line)
					}
				}
			}
		})
	}
}

// TestPrintJSONNull is issue 15 case 9: a JSON column's document null
// prints as null in every format and differs from SQL NULL in each: NULL
// in a table, an empty csv field, the key left out in json and jsonl
// (documents are embedded as themselves, as duckdb -json does); the
// statement's column names (duplicates too), order and other values stay
// as they are, also with a trailing ; or comment, and a statement DESCRIBE
// cannot take runs as it is.
func TestPrintJSONNull(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	const q = `SELECT CASE WHEN i = 2 THEN CAST('null' AS JSON) WHEN i = 1 THEN CAST('[1, {"k": null}]' AS JSON) END AS doc, i AS x, -i AS x
		FROM range(3) t(i) ORDER BY i DESC`
	want := map[string]string{
		"table": "doc              | x | x\n-----------------+---+---\nnull             | 2 | -2\n[1, {\"k\": null}] | 1 | -1\nNULL             | 0 |  0\n(3 rows)\n",
		"csv":   "doc,x,x\nnull,2,-2\n\"[1, {\"\"k\"\": null}]\",1,-1\n,0,0\n",
		"json":  "[\n{\"doc\":null,\"x\":2,\"x\":-2},\n{\"doc\":[1,{\"k\":null}],\"x\":1,\"x\":-1},\n{\"x\":0,\"x\":0}\n]\n",
		"jsonl": "{\"doc\":null,\"x\":2,\"x\":-2}\n{\"doc\":[1,{\"k\":null}],\"x\":1,\"x\":-1}\n{\"x\":0,\"x\":0}\n",
	}
	for _, format := range Formats {
		for _, query := range []string{q, q + ";\n", q + " -- the end"} {
			var buf bytes.Buffer
			if err := db.Print(t.Context(), &buf, query, format); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if buf.String() != want[format] {
				t.Errorf("%s of %q:\ngot  %q\nwant %q", format, query[len(q):], buf.String(), want[format])
			}
		}
	}
	var buf bytes.Buffer
	if err := db.Print(t.Context(), &buf, "SHOW TABLES", "csv"); err != nil || !strings.HasPrefix(buf.String(), "name\n") {
		t.Errorf("SHOW TABLES: %q, %v", buf.String(), err)
	}
	var fe *FormatError
	if err := db.Print(t.Context(), &bytes.Buffer{}, q, "xml"); !errors.As(err, &fe) {
		t.Errorf("unknown format: got %v, want a *FormatError", err)
	}
}

// TestSpecialValuesDistinct is issue 15 case 9 in every format: each
// special value a lake holds (double NaN and infinities, infinite times
// and dates, the JSON document null, the text a PostgreSQL numeric NaN is)
// prints differently from SQL NULL of its type.
func TestSpecialValuesDistinct(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	values := []struct{ value, typ string }{
		{"'NaN'", "DOUBLE"}, {"'Infinity'", "DOUBLE"}, {"'-Infinity'", "DOUBLE"},
		{"'infinity'", "TIMESTAMP"}, {"'-infinity'", "TIMESTAMP"},
		{"'infinity'", "TIMESTAMPTZ"}, {"'-infinity'", "TIMESTAMPTZ"},
		{"'infinity'", "DATE"}, {"'-infinity'", "DATE"},
		{"'null'", "JSON"}, {"'NaN'", "VARCHAR"}, {"'Infinity'", "VARCHAR"},
	}
	// Where the two data rows are in each format's lines.
	first := map[string]int{"table": 2, "csv": 1, "json": 1, "jsonl": 0}
	for _, v := range values {
		q := fmt.Sprintf("SELECT x FROM (VALUES (1, CAST(%s AS %s)), (2, CAST(NULL AS %[2]s))) t(i, x) ORDER BY i", v.value, v.typ)
		for _, format := range Formats {
			var buf bytes.Buffer
			if err := db.Print(t.Context(), &buf, q, format); err != nil {
				t.Fatalf("%s %s: %v", v.typ, format, err)
			}
			lines := strings.Split(buf.String(), "\n")
			i := first[format]
			special, null := strings.TrimSuffix(lines[i], ","), lines[i+1]
			if special == null {
				t.Errorf("%s %s prints as SQL NULL does in %s: %q", v.typ, v.value, format, special)
			}
		}
	}
}

func TestFormatEmptyAndErrors(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	want := map[string]string{
		"table": "a | b\n--+--\n(0 rows)\n",
		"csv":   "a,b\n",
		"json":  "[]\n",
		"jsonl": "",
	}
	for _, format := range Formats {
		rows, err := db.Query(t.Context(), `SELECT 1 AS a, 2 AS b WHERE false`)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Format(&buf, rows, format); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want[format] {
			t.Errorf("%s of no rows: got %q, want %q", format, buf.String(), want[format])
		}
	}
	rows, err := db.Query(t.Context(), `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	var fe *FormatError
	if err := Format(&bytes.Buffer{}, rows, "xml"); !errors.As(err, &fe) || fe.Format != "xml" {
		t.Errorf("unknown format: got %v, want a *FormatError", err)
	}
	// An error while the query runs is reported, not a truncated table.
	rows, err = db.Query(t.Context(), `SELECT CAST(CASE WHEN i < 3000 THEN '1' ELSE 'x' END AS INTEGER) FROM range(5000) t(i)`)
	if err == nil {
		err = Format(&bytes.Buffer{}, rows, "table")
	}
	if err == nil {
		t.Error("a failing query formatted without error")
	}
}

// TestFormatTablePages checks that a long result is aligned page by page and
// that columns only widen.
func TestFormatTablePages(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	rows, err := db.Query(t.Context(), `SELECT i, CASE WHEN i = 1500 THEN repeat('w', 40) ELSE 'x' END AS s FROM range(2000) t(i)`)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Format(&buf, rows, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2+2000+1 || lines[len(lines)-1] != "(2000 rows)" {
		t.Fatalf("got %d lines ending %q", len(lines), lines[len(lines)-1])
	}
	bar := strings.Index(lines[0], "|")
	for i, line := range lines[2 : 2+2000] {
		if i == tablePage {
			// The second page widens the first column (4 digits).
			if next := strings.Index(line, "|"); next < bar {
				t.Fatalf("column narrowed on page 2: %q", line)
			} else {
				bar = next
			}
		}
		if strings.Index(line, "|") != bar {
			t.Fatalf("row %d is not aligned with its page: %q", i, line)
		}
	}
	if !strings.HasSuffix(lines[2+1500], strings.Repeat("w", 40)) {
		t.Errorf("wide value lost: %q", lines[2+1500])
	}
}

// FuzzFormat renders any string in every format and checks that it reads
// back: CSV through encoding/csv, JSON through encoding/json, and a table
// row stays on one line.
func FuzzFormat(f *testing.F) {
	for _, s := range []string{"", " ", "a", `"`, `""`, ",", "a,b", "\n", "\r\n", "\r", "line1\nline2", " lead", "trail ",
		"NULL", `\`, "\t", "😀", "中文", "é", `{"a":1}`, "x\x00y"} {
		f.Add(s)
	}
	l := newTestLake(f)
	db := l.open()
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			// DuckDB VARCHARs are UTF-8 without NUL; the lake never holds others.
			return
		}
		out := map[string]string{}
		for _, format := range Formats {
			rows, err := db.Query(t.Context(), `SELECT CAST(? AS VARCHAR) AS v, CAST(NULL AS VARCHAR) AS n`, s)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Format(&buf, rows, format); err != nil {
				t.Fatal(err)
			}
			out[format] = buf.String()
		}
		recs, err := csv.NewReader(strings.NewReader(out["csv"])).ReadAll()
		// encoding/csv reads \r\n inside a quoted field as \n.
		if want := strings.ReplaceAll(s, "\r\n", "\n"); err != nil || len(recs) != 2 || recs[1][0] != want || recs[1][1] != "" {
			t.Errorf("CSV %q reads back as %q, %v", out["csv"], recs, err)
		}
		if s == "" && !strings.Contains(out["csv"], `""`) {
			t.Errorf("an empty string must differ from NULL in CSV: %q", out["csv"])
		}
		var arr []map[string]*string
		if err := json.Unmarshal([]byte(out["json"]), &arr); err != nil || len(arr) != 1 || arr[0]["v"] == nil || *arr[0]["v"] != s || arr[0]["n"] != nil {
			t.Errorf("JSON %q reads back as %v, %v", out["json"], arr, err)
		}
		var obj map[string]*string
		if err := json.Unmarshal([]byte(out["jsonl"]), &obj); err != nil || obj["v"] == nil || *obj["v"] != s {
			t.Errorf("JSON line %q reads back as %v, %v", out["jsonl"], obj, err)
		}
		lines := strings.Split(strings.TrimSuffix(out["table"], "\n"), "\n")
		if len(lines) != 4 || runewidth.StringWidth(lines[1]) != runewidth.StringWidth(lines[2]) {
			t.Errorf("table of %q is not one aligned row: %q", s, out["table"])
		}
	})
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s: %v (run go test -update to create it)", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it after review):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestFormatLongCells: the table format cuts a cell after maxCell
// characters; csv and json keep the value whole.
func TestFormatLongCells(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	const q = `SELECT repeat('é', 1048576) AS v`
	for _, tt := range []struct {
		format string
		want   int // runes of the value in the output
	}{{"table", maxCell}, {"csv", 1 << 20}, {"jsonl", 1 << 20}} {
		rows, err := db.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Format(&buf, rows, tt.format); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(buf.String(), "é"); got != tt.want {
			t.Errorf("%s: %d characters of the value, want %d", tt.format, got, tt.want)
		}
		if tt.format == "table" && !strings.Contains(buf.String(), "é…\n") {
			t.Errorf("table: the cut is not marked")
		}
	}
}
