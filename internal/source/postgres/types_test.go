package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// typeCase is one row of the type table of docs/postgres.md: a column type,
// a literal, and what it becomes.
type typeCase struct {
	col     string
	sqlType string
	literal string
	want    any
	column  schema.Column // Name, SourceType and SourceTypeCode are not compared
}

var typeCases = []typeCase{
	{"c_smallint", "smallint", "-32768", int64(-32768), schema.Column{Type: schema.Int64}},
	{"c_integer", "integer", "2147483647", int64(2147483647), schema.Column{Type: schema.Int64}},
	{"c_bigint", "bigint", "-9223372036854775808", int64(-9223372036854775808), schema.Column{Type: schema.Int64}},
	{"c_numeric", "numeric(12,2)", "-1234567890.50", "-1234567890.50", schema.Column{Type: schema.Decimal, Precision: 12, Scale: 2}},
	{"c_numeric_38", "numeric(38,10)", "'NaN'", nil, schema.Column{Type: schema.Decimal, Precision: 38, Scale: 10}},
	{"c_numeric_neg_scale", "numeric(3,-2)", "12345", "12300", schema.Column{Type: schema.Decimal, Precision: 5}},
	{"c_numeric_small", "numeric(2,4)", "0.0012", "0.0012", schema.Column{Type: schema.Decimal, Precision: 4, Scale: 4}},
	{"c_numeric_39", "numeric(39,0)", "123456789012345678901234567890123456789", "123456789012345678901234567890123456789", schema.Column{Type: schema.String}},
	{"c_numeric_free", "numeric", "3.14159265358979323846264338327950288", "3.14159265358979323846264338327950288", schema.Column{Type: schema.String}},
	{"c_numeric_big", "numeric", "1e30", "1000000000000000000000000000000", schema.Column{Type: schema.String}},
	{"c_numeric_nan", "numeric", "'NaN'", "NaN", schema.Column{Type: schema.String}},
	{"c_numeric_inf", "numeric", "'-Infinity'", "-Infinity", schema.Column{Type: schema.String}},
	{"c_real", "real", "1.5", 1.5, schema.Column{Type: schema.Double}},
	{"c_double", "double precision", "0.1", 0.1, schema.Column{Type: schema.Double}},
	{"c_text", "text", "'héllo, \"world\"\n|x'", "héllo, \"world\"\n|x", schema.Column{Type: schema.String}},
	{"c_varchar", "varchar(20)", "'abc'", "abc", schema.Column{Type: schema.String, MaxLength: 20}},
	{"c_char", "char(5)", "'ab'", "ab   ", schema.Column{Type: schema.String, MaxLength: 5}},
	{"c_bool", "boolean", "true", true, schema.Column{Type: schema.Boolean}},
	{"c_date", "date", "'2024-02-29'", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), schema.Column{Type: schema.DateTime}},
	{"c_date_bc", "date", "'0044-03-15 BC'", time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC), schema.Column{Type: schema.DateTime}},
	{"c_time", "time", "'13:14:15.5'", "13:14:15.5", schema.Column{Type: schema.String}},
	{"c_timestamp", "timestamp", "'2024-01-02 03:04:05.123456'", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), schema.Column{Type: schema.DateTime}},
	{"c_timestamptz", "timestamptz", "'2024-01-02 03:04:05+02'", time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC), schema.Column{Type: schema.DateTimeOffset}},
	{"c_ts_inf", "timestamp", "'infinity'", schema.Infinity, schema.Column{Type: schema.DateTime}},
	{"c_tstz_neg_inf", "timestamptz", "'-infinity'", schema.NegInfinity, schema.Column{Type: schema.DateTimeOffset}},
	{"c_date_inf", "date", "'infinity'", schema.Infinity, schema.Column{Type: schema.DateTime}},
	{"c_date_first", "date", "'4713-01-01 BC'", time.Date(-4712, 1, 1, 0, 0, 0, 0, time.UTC), schema.Column{Type: schema.DateTime}},
	{"c_date_5digit", "date", "'12345-06-07'", time.Date(12345, 6, 7, 0, 0, 0, 0, time.UTC), schema.Column{Type: schema.DateTime}},
	{"c_date_last", "date", "'5874897-12-31'", schema.Infinity, schema.Column{Type: schema.DateTime}},
	{"c_ts_last", "timestamp", "'294276-12-31 23:59:59.999999'", schema.Infinity, schema.Column{Type: schema.DateTime}},
	{"c_ts_lake_last", "timestamp", "'294247-01-10 04:00:54.775806'", schema.MaxTime, schema.Column{Type: schema.DateTime}},
	{"c_tstz_bc", "timestamptz", "'0001-12-31 23:59:59.5+00 BC'", time.Date(0, 12, 31, 23, 59, 59, 5e8, time.UTC), schema.Column{Type: schema.DateTimeOffset}},
	{"c_jsonb_null", "jsonb", "'null'", "null", schema.Column{Type: schema.JSON}},
	{"c_interval", "interval", "'1 year 2 mons 3 days 04:05:06'", "P1Y2M3DT4H5M6S", schema.Column{Type: schema.String}},
	{"c_uuid", "uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", schema.Column{Type: schema.Guid}},
	{"c_json", "json", `'{"a": [1, 2]}'`, `{"a": [1, 2]}`, schema.Column{Type: schema.JSON}},
	{"c_jsonb", "jsonb", `'{"b": 1, "a": "x"}'`, `{"a": "x", "b": 1}`, schema.Column{Type: schema.JSON}},
	{"c_bytea", "bytea", `'\x00ff10'`, "AP8Q", schema.Column{Type: schema.String}},
	{"c_int_array", "integer[]", "'{{1,2},{3,NULL}}'", "[[1,2],[3,null]]", schema.Column{Type: schema.JSON}},
	{"c_text_array", "text[]", `ARRAY['a b', 'c,d', 'NULL', NULL, 'q"x\y']`, `["a b","c,d","NULL",null,"q\"x\\y"]`, schema.Column{Type: schema.JSON}},
	{"c_bool_array", "boolean[]", "'{t,f}'", "[true,false]", schema.Column{Type: schema.JSON}},
	{"c_float_array", "float8[]", "'{1.5,NaN,-Infinity}'", `[1.5,"NaN","-Infinity"]`, schema.Column{Type: schema.JSON}},
	{"c_enum", "mood", "'happy'", "happy", schema.Column{Type: schema.String}},
	{"c_domain", "posint", "7", int64(7), schema.Column{Type: schema.Int64}},
	{"c_inet", "inet", "'10.0.0.1/8'", "10.0.0.1/8", schema.Column{Type: schema.String}},
	{"c_null", "text", "NULL", nil, schema.Column{Type: schema.String}},
}

func typeTableSQL() (create, insert string) {
	create = "CREATE TABLE alltypes (id int PRIMARY KEY"
	insert = "INSERT INTO alltypes VALUES (1"
	for _, c := range typeCases {
		create += ", " + c.col + " " + c.sqlType
		insert += ", " + c.literal
	}
	return create + ")", insert + ")"
}

var typeSetup = []string{
	"CREATE TYPE mood AS ENUM ('sad', 'happy')",
	"CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
}

func checkTypeRow(t *testing.T, how string, ch source.Change) {
	t.Helper()
	for _, c := range typeCases {
		i := slices.Index(ch.Columns, c.col)
		if i < 0 {
			t.Errorf("%s: column %s missing", how, c.col)
			continue
		}
		got := ch.Values[i]
		if w, ok := c.want.(time.Time); ok {
			g, ok := got.(time.Time)
			if !ok || !g.Equal(w) {
				t.Errorf("%s: %s (%s) = %#v, want %v", how, c.col, c.sqlType, got, w)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %s (%s) = %#v, want %#v", how, c.col, c.sqlType, got, c.want)
		}
	}
}

func TestTypesDescribeAndCopy(t *testing.T) {
	create, insert := typeTableSQL()
	_, _, dsn := newDB(t, append(typeSetup, create, insert)...)
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "alltypes", PartitionColumn: "c_timestamp"}}})
	ctx := context.Background()
	desc, err := s.Describe(ctx, "alltypes")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(desc.Key, []string{"id"}) || desc.PartitionColumn != "c_timestamp" || desc.Name != "alltypes" {
		t.Fatalf("Describe: key %v partition %q name %q", desc.Key, desc.PartitionColumn, desc.Name)
	}
	for _, c := range typeCases {
		got, ok := desc.Column(c.col)
		if !ok {
			t.Fatalf("Describe lacks %s", c.col)
		}
		if got.SourceType == "" || got.SourceTypeCode == 0 {
			t.Errorf("%s: no source type: %+v", c.col, got)
		}
		if got.SourceID <= 0 {
			t.Errorf("%s: no attnum (SourceID): %+v", c.col, got)
		}
		got.Name, got.SourceType, got.SourceTypeCode, got.SourceID = "", "", 0, 0
		if !reflect.DeepEqual(got, c.column) {
			t.Errorf("%s (%s): column %+v, want %+v", c.col, c.sqlType, got, c.column)
		}
	}
	// The table's OID depends on what the cluster created before.
	if desc.SourceID == "" {
		t.Errorf("Describe: no table OID (SourceID)")
	}
	golden := *desc
	golden.SourceID = ""
	checkGolden(t, "alltypes.describe.json", &golden)
	col := &collector{}
	if err := s.Copy(ctx, "alltypes", "", col.emit); err != nil {
		t.Fatal(err)
	}
	row, ok := col.rows()["alltypes"]["1"]
	if !ok {
		t.Fatalf("copy did not deliver row 1: %+v", col.batches)
	}
	checkTypeRow(t, "copy", row)
}

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// checkGolden compares desc, as JSON without type OIDs (user types get new
// ones in every database), with testdata/name.
func checkGolden(t *testing.T, name string, desc *schema.Table) {
	t.Helper()
	d := *desc
	d.Columns = slices.Clone(desc.Columns)
	for i := range d.Columns {
		d.Columns[i].SourceTypeCode = 0
	}
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Describe differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}
