package delta

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/lake/parquet"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/testdeps"
)

// testCols is the layout of the test table: every CDM type, a source
// column "id" that clashes with lakelink's Id, and a dropped column.
func testCols() []lake.Column {
	return []lake.Column{
		{Name: "Id", Type: schema.Guid, System: true},
		{Name: "SinkCreatedOn", Type: schema.DateTime, System: true},
		{Name: "SinkModifiedOn", Type: schema.DateTime, System: true},
		{Name: "name", Type: schema.String, MaxLength: 100},
		{Name: "revenue", Type: schema.Decimal, Precision: 12, Scale: 2},
		{Name: "big", Type: schema.Decimal},
		{Name: "score", Type: schema.Double},
		{Name: "active", Type: schema.Boolean},
		{Name: "doc", Type: schema.JSON},
		{Name: "id", Type: schema.String},
		{Name: "seen", Type: schema.DateTimeOffset},
		{Name: "count", Type: schema.Int64},
		{Name: "versionnumber", Type: schema.Int64, System: true},
		{Name: "createdon", Type: schema.DateTime},
		{Name: "IsDelete", Type: schema.Boolean, System: true},
	}
}

var testColumns = []string{"name", "revenue", "big", "score", "active", "doc", "id", "seen", "count", "createdon"}

// row makes an upsert of the test table.
func row(id string, version int64, vals ...any) source.Change {
	return source.Change{Table: "account", ID: id, Version: version, Columns: testColumns, Values: vals}
}

func guid(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

func newStore(t *testing.T) (store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

// writer writes versions of one test table deterministically.
type writer struct {
	t     *testing.T
	log   *Log
	cols  []lake.Column
	snap  *Snapshot
	files []*Add
	n     int
	seq   int64
	now   time.Time
	// wrote holds the changes and commit time of each data file.
	wrote map[string]written
}

type written struct {
	changes []source.Change
	sink    time.Time
}

// expect returns the rows the live files hold, in the current layout.
func (w *writer) expect() [][]string {
	var rows [][]string
	for _, a := range w.files {
		f := w.wrote[a.Path]
		rows = append(rows, expectRows(w.t, w.cols, f.changes, f.sink)...)
	}
	return sortRows(rows)
}

// livePaths returns the lake names of the live files of the snapshot.
func (w *writer) livePaths() []string {
	var out []string
	for _, p := range w.snap.Paths() {
		out = append(out, w.log.Dir()+p)
	}
	return out
}

func newWriter(t *testing.T, st store.Store) *writer {
	return &writer{t: t, log: NewLog(st, "account"), cols: testCols(), snap: NewSnapshot(), wrote: map[string]written{},
		now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
}

// partitionOf is the Year partition of a test change.
func partitionOf(ch *source.Change) string {
	if ch.Deleted {
		return lake.NoPartition
	}
	i := slices.Index(ch.Columns, "createdon")
	if i < 0 {
		return lake.NoPartition
	}
	if tm, ok := ch.Values[i].(time.Time); ok {
		return tm.UTC().Format("2006")
	}
	return lake.NoPartition
}

// indexedNames returns the physical names of the columns of the Delta
// schema (not dropped) in order.
func indexedNames(cols []lake.Column) []string {
	names := lake.ColumnNames(cols)
	var out []string
	for i, c := range cols {
		if !c.Dropped {
			out = append(out, names[i])
		}
	}
	return out
}

// write writes changes as one data file per partition and returns their
// adds.
func (w *writer) write(changes []source.Change) []*Add {
	w.t.Helper()
	byPart := map[string][]source.Change{}
	for _, ch := range changes {
		p := partitionOf(&ch)
		byPart[p] = append(byPart[p], ch)
	}
	var adds []*Add
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range byPart {
			if !yield(k) {
				return
			}
		}
	}) {
		b, err := parquet.NewBuilder("account", w.cols, w.now)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, ch := range byPart[p] {
			if err := b.Append(&ch); err != nil {
				w.t.Fatal(err)
			}
		}
		rec := b.Record()
		w.n++
		a, err := w.log.WriteDataFile(context.Background(), DataFileName(p, fmt.Sprintf("0000000%d_%d", 1, w.n)), p, rec, indexedNames(w.cols), w.now)
		rec.Release()
		b.Release()
		if err != nil {
			w.t.Fatal(err)
		}
		w.wrote[a.Path] = written{changes: byPart[p], sink: w.now}
		adds = append(adds, a)
	}
	return adds
}

// commit advances the table to hold files, as lake commit w.seq+1.
func (w *writer) commit(files []*Add, rearrange bool, conf map[string]string) {
	w.t.Helper()
	sch, err := SchemaString("account", w.cols)
	if err != nil {
		w.t.Fatal(err)
	}
	w.seq++
	op := "WRITE"
	if rearrange {
		op = "OPTIMIZE"
	}
	s, err := w.log.Advance(context.Background(), w.snap, Target{
		Metadata: Metadata{ID: "5d9c2b55-0000-4000-8000-00000000acc0", Name: "account", SchemaString: sch,
			PartitionColumns: []string{PartitionColumn}, Configuration: conf},
		Files: files, Seq: w.seq, Rearrange: rearrange, Operation: op, Now: w.now, Retention: time.Hour,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.snap, w.files = s, files
	w.now = w.now.Add(time.Minute)
}

func (w *writer) append(changes ...source.Change) {
	w.t.Helper()
	w.commit(append(slices.Clone(w.files), w.write(changes)...), false, nil)
}

var (
	day1 = time.Date(2024, 3, 1, 10, 30, 0, 123456000, time.UTC)
	day2 = time.Date(2025, 7, 4, 0, 0, 0, 0, time.UTC)
)

// buildTable writes the tiny table of the golden test: 12 versions, so a
// checkpoint at 10; an update, a compaction, a column added and one dropped.
func buildTable(t *testing.T, st store.Store) *writer {
	w := newWriter(t, st)
	w.append(
		row(guid(1), 1, "Contoso", "1234.50", "-0.0000000001", 1.5, true, `{"a":1}`, "c-1", day1.In(time.FixedZone("", 3600)), int64(7), day1),
		row(guid(2), 1, "Fabrikam \"quoted\", with comma\nand newline", "-99.99", "12345678901234567890123456.7890123456", math.Inf(1), false, nil, nil, nil, int64(math.MinInt64), day2),
		row(guid(3), 1, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil),
	)
	for i := 4; i <= 11; i++ {
		w.append(row(guid(i), int64(i), fmt.Sprintf("n%d", i), fmt.Sprintf("%d.0", i), "0", float64(i)/3, i%2 == 0, "[]", "x", schema.Infinity, int64(i), day2))
	}
	// Versions 1-8 append; 9: a compaction folds the files of 2025 into one.
	var keep, fold []*Add
	for _, a := range w.files {
		if a.PartitionValues[PartitionColumn] == "2025" {
			fold = append(fold, a)
		} else {
			keep = append(keep, a)
		}
	}
	if len(fold) < 2 {
		t.Fatalf("nothing to fold: %d files of 2025", len(fold))
	}
	var changes []source.Change
	changes = append(changes, row(guid(2), 1, "Fabrikam \"quoted\", with comma\nand newline", "-99.99", "12345678901234567890123456.7890123456", math.Inf(1), false, nil, nil, nil, int64(math.MinInt64), day2))
	for i := 4; i <= 11; i++ {
		changes = append(changes, row(guid(i), int64(i), fmt.Sprintf("n%d", i), fmt.Sprintf("%d.0", i), "0", float64(i)/3, i%2 == 0, "[]", "x", schema.Infinity, int64(i), day2))
	}
	w.commit(append(keep, w.write(changes)...), true, nil)
	// Version 10 (checkpointed): a column added.
	w.cols = append(w.cols, lake.Column{Name: "added", Type: schema.String})
	w.append(source.Change{Table: "account", ID: guid(20), Version: 20, Columns: []string{"name", "added", "createdon"}, Values: []any{"ten", "new", day1}})
	// Version 11: the column "doc" dropped.
	w.cols[8].Dropped = true
	w.append(source.Change{Table: "account", ID: guid(21), Version: 21, Columns: []string{"name"}, Values: []any{"eleven"}})
	return w
}

// expected returns the canonical text of every row the table's live files
// hold, as canon spells them, sorted by Id then version.
func sortRows(rows [][]string) [][]string {
	slices.SortFunc(rows, func(a, b []string) int { return slices.Compare(a, b) })
	return rows
}

// canonDecimal spells a decimal value with its column's scale.
func canonDecimal(t *testing.T, c lake.Column, v string) string {
	p, s, err := parquet.DecimalShape(c)
	if err != nil {
		t.Fatal(err)
	}
	n, err := parquet.Decimal(v, p, s)
	if err != nil {
		t.Fatal(err)
	}
	return decimalText(n, s)
}

// canon spells v, a value of column c as a change carries it, the way the
// readers' results are spelled.
func canon(t *testing.T, c lake.Column, v any) string {
	if v == nil {
		return "NULL"
	}
	switch c.Type {
	case schema.Decimal:
		return canonDecimal(t, c, v.(string))
	case schema.DateTime, schema.DateTimeOffset:
		us, err := parquet.Micros(v)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(us, 10)
	case schema.Double:
		return strconv.FormatFloat(v.(float64), 'g', -1, 64)
	case schema.Int64:
		return strconv.FormatInt(v.(int64), 10)
	case schema.Boolean:
		return strconv.FormatBool(v.(bool))
	}
	return v.(string)
}

// expectRows is what a reader of files written from changes at the given
// commit times must return, in the layout cols (dropped columns left out).
func expectRows(t *testing.T, cols []lake.Column, changes []source.Change, sink time.Time) [][]string {
	var out [][]string
	for _, ch := range changes {
		var r []string
		for _, c := range cols {
			if c.Dropped {
				continue
			}
			var v any
			switch {
			case c.System && c.Name == "Id":
				v = ch.ID
			case c.System && (c.Name == "SinkCreatedOn" || c.Name == "SinkModifiedOn"):
				v = sink
			case c.System && c.Name == "versionnumber":
				v = ch.Version
			case c.System && c.Name == "IsDelete":
				if ch.Deleted {
					v = true
				}
			case !ch.Deleted:
				if j := slices.Index(ch.Columns, c.Name); j >= 0 {
					v = ch.Values[j]
				}
			}
			r = append(r, canon(t, c, v))
		}
		out = append(out, r)
	}
	return sortRows(out)
}

// duckRows reads files (lake-relative names) of layout cols with DuckDB's
// read_parquet, union_by_name so that files of older layouts read with NULL
// for the columns they lack.
func duckRows(t *testing.T, st store.Store, cols []lake.Column, files []string) [][]string {
	t.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	names := lake.ColumnNames(cols)
	var sel []string
	for i, col := range cols {
		if col.Dropped {
			continue
		}
		q := `"` + names[i] + `"`
		switch col.Type {
		case schema.DateTime, schema.DateTimeOffset:
			q = fmt.Sprintf(`CASE WHEN %s = 'infinity'::TIMESTAMPTZ THEN '9223372036854775807' WHEN %s = '-infinity'::TIMESTAMPTZ THEN '-9223372036854775807' ELSE CAST(epoch_us(%s) AS VARCHAR) END`, q, q, q)
		case schema.Double:
			// Scanned as float64 below.
		default:
			q = fmt.Sprintf("CAST(%s AS VARCHAR)", q)
		}
		sel = append(sel, q)
	}
	locs := make([]string, len(files))
	for i, f := range files {
		locs[i] = "'" + st.Location(f) + "'"
	}
	query := fmt.Sprintf("SELECT %s FROM read_parquet([%s], union_by_name=true)", strings.Join(sel, ", "), strings.Join(locs, ", "))
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(sel))
		ptrs := make([]any, len(sel))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				r[i] = "NULL"
			case float64:
				r[i] = strconv.FormatFloat(x, 'g', -1, 64)
			case string:
				r[i] = x
			default:
				t.Fatalf("DuckDB gave %T", v)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sortRows(out)
}

// hypRows reads files with hyparquet (JavaScript, testdata/hyparquet) and
// spells them as canon does; hyparquet gives decimals as JavaScript
// numbers, so a decimal is spelled as the double nearest to it, and the
// expectation's decimals are compared so (sameAsHyparquet).
func hypRows(t *testing.T, st store.Store, cols []lake.Column, files []string) [][]string {
	t.Helper()
	node := testdeps.Node(t)
	mods := testdeps.NodeModules(t, "testdata/hyparquet")
	script, err := filepath.Abs("testdata/hyparquet/read.mjs")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{script}
	for _, f := range files {
		args = append(args, st.Location(f))
	}
	cmd := exec.Command(node, args...)
	cmd.Env = append(cmd.Environ(), "HYPARQUET="+filepath.Join(mods, "hyparquet", "src", "node.js"))
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("hyparquet: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("hyparquet: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("hyparquet output: %v", err)
	}
	names := lake.ColumnNames(cols)
	var res [][]string
	for _, m := range rows {
		var r []string
		for i, c := range cols {
			if c.Dropped {
				continue
			}
			v, ok := m[names[i]]
			if !ok || v == nil {
				r = append(r, "NULL")
				continue
			}
			switch x := v.(type) {
			case map[string]any:
				r = append(r, x["micros"].(string))
			case string:
				switch {
				case c.Type == schema.Double && x == "Infinity":
					r = append(r, "+Inf")
				case c.Type == schema.Double && x == "-Infinity":
					r = append(r, "-Inf")
				default:
					r = append(r, x)
				}
			case float64:
				if c.Type == schema.Decimal {
					r = append(r, "~"+strconv.FormatFloat(x, 'g', -1, 64))
				} else {
					r = append(r, strconv.FormatFloat(x, 'g', -1, 64))
				}
			case bool:
				r = append(r, strconv.FormatBool(x))
			default:
				t.Fatalf("hyparquet gave %T for %s", v, c.Name)
			}
		}
		res = append(res, r)
	}
	return sortRows(res)
}

// asHyparquet spells the decimals of expected rows as hyparquet reads
// them: the nearest double.
func asHyparquet(cols []lake.Column, rows [][]string) [][]string {
	var kept []lake.Column
	for _, c := range cols {
		if !c.Dropped {
			kept = append(kept, c)
		}
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
		for j, c := range kept {
			if c.Type == schema.Decimal && r[j] != "NULL" {
				f, _ := strconv.ParseFloat(r[j], 64)
				out[i][j] = "~" + strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
	}
	return sortRows(out)
}

// diffRows reports the first row where got and want differ, or "".
func diffRows(got, want [][]string) string {
	return diffRowsFunc(got, want, func(a, b string) bool { return a == b })
}

// nearDecimal compares fields as hyparquet spells decimals ("~" and the
// double it computed from the unscaled integer, exact below 2^53): equal,
// or within a relative 1e-15 of each other.
func nearDecimal(a, b string) bool {
	if a == b {
		return true
	}
	x, okA := strings.CutPrefix(a, "~")
	y, okB := strings.CutPrefix(b, "~")
	if !okA || !okB {
		return false
	}
	fx, err1 := strconv.ParseFloat(x, 64)
	fy, err2 := strconv.ParseFloat(y, 64)
	return err1 == nil && err2 == nil && math.Abs(fx-fy) <= 1e-15*math.Abs(fy)
}

func diffRowsFunc(got, want [][]string, eq func(a, b string) bool) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("row %d missing: want %q", i, want[i])
		case i >= len(want):
			return fmt.Sprintf("row %d extra: %q", i, got[i])
		case !slices.EqualFunc(got[i], want[i], eq):
			return fmt.Sprintf("row %d:\n got  %q\n want %q", i, got[i], want[i])
		}
	}
	return ""
}
