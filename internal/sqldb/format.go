package sqldb

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/mattn/go-runewidth"

	"github.com/lakelink/lakelink/internal/csvfield"
)

// Formats lists the output formats Format accepts.
var Formats = []string{"table", "csv", "json", "jsonl"}

// FormatError reports an output format Format does not know.
type FormatError struct{ Format string }

func (e *FormatError) Error() string {
	return fmt.Sprintf("unknown output format %q: use one of %s", e.Format, strings.Join(Formats, ", "))
}

// The table format holds a page of rows to size its columns, so that
// memory stays bounded whatever the result size; columns only widen from
// one page to the next. A page ends at tablePage rows or tablePageBytes of
// text, and a cell shows at most maxCell characters (a 1 MB text value in
// an aligned table helps no one; csv and json show it whole).
const (
	tablePage      = 1000
	tablePageBytes = 4 << 20
	maxCell        = 1000
)

// Print runs query on db, as Query does, and writes its result to w in
// format, as Format does, except that a JSON column's document null prints
// as null, distinct from SQL NULL (NULL in a table, an empty field in csv,
// the key left out of its row's object in json and jsonl): the DuckDB Go
// driver returns a JSON value parsed, nil for both, so the result's JSON
// columns are read as their text. For that
// Print asks DuckDB for the result's column types first (DESCRIBE, which
// binds the statement without running it) and, when some column is JSON,
// runs the statement under a select that casts those to VARCHAR (by name,
// or by position when names repeat; names, order and the other values as
// they are). A statement DESCRIBE cannot take (SHOW TABLES) runs as it is.
func (db *DB) Print(ctx context.Context, w io.Writer, query, format string) error {
	if !slices.Contains(Formats, format) {
		return &FormatError{Format: format}
	}
	// The statement goes inside parentheses: a trailing ; would end it
	// there, and a trailing -- comment is ended by the line break.
	inner := "(\n" + strings.TrimRight(strings.TrimSpace(query), "; \t\r\n") + "\n)"
	var (
		list, replace []string
		jsonText      []bool
		names         = map[string]bool{}
		unique        = true
	)
	if rows, err := db.Query(ctx, "SELECT column_name, column_type FROM (DESCRIBE "+inner+")"); err == nil {
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return fmt.Errorf("read the result's columns: %w", err)
			}
			pos := fmt.Sprintf("#%d", len(list)+1)
			if typ == "JSON" {
				pos = "CAST(" + pos + " AS VARCHAR)"
				replace = append(replace, "CAST("+quoteIdent(name)+" AS VARCHAR) AS "+quoteIdent(name))
			}
			list = append(list, pos+" AS "+quoteIdent(name))
			jsonText = append(jsonText, typ == "JSON")
			unique = unique && !names[strings.ToLower(name)]
			names[strings.ToLower(name)] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("read the result's columns: %w", err)
		}
	}
	q := query
	switch {
	case len(replace) == 0:
		jsonText = nil
	case unique:
		// By name where names are unique (DuckDB renames duplicates in a
		// subquery): a column added to a table between DESCRIBE and the
		// statement is shown too.
		q = "SELECT * REPLACE (" + strings.Join(replace, ", ") + ") FROM " + inner
	default:
		q = "SELECT " + strings.Join(list, ", ") + " FROM " + inner
	}
	rows, err := db.Query(ctx, q)
	if err != nil {
		return err
	}
	return formatRows(w, rows, format, jsonText)
}

// Format writes rows as an aligned text table ("table"), CSV with a header
// ("csv", NULL as an empty field, an empty string as ""), a JSON array of
// objects ("json") or one JSON object per line ("jsonl"). It closes rows.
func Format(w io.Writer, rows *sql.Rows, format string) error {
	return formatRows(w, rows, format, nil)
}

// formatRows is Format; jsonText, when set, marks the columns that hold the
// text of a JSON document (Print).
func formatRows(w io.Writer, rows *sql.Rows, format string, jsonText []bool) error {
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("read the result's columns: %w", err)
	}
	cols := make([]resultColumn, len(types))
	for i, t := range types {
		cols[i] = resultColumn{name: t.Name(), dbType: t.DatabaseTypeName()}
		if i < len(jsonText) && jsonText[i] {
			cols[i].dbType, cols[i].jsonText = "JSON", true
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var out formatter
	switch format {
	case "table":
		out = &tableFormatter{w: bw, cols: cols}
	case "csv":
		out = &csvFormatter{w: bw, cols: cols}
	case "json":
		out = &jsonFormatter{w: bw, cols: cols, array: true}
	case "jsonl":
		out = &jsonFormatter{w: bw, cols: cols}
	default:
		return &FormatError{Format: format}
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read a result row: %w", err)
		}
		if err := out.row(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("run the query: %w", err)
	}
	if err := out.end(); err != nil {
		return err
	}
	return bw.Flush()
}

type resultColumn struct {
	name   string
	dbType string
	// jsonText: the column holds a JSON document's text, not the
	// driver's parsed value.
	jsonText bool
}

// numeric columns are right-aligned in tables and bare in JSON.
func (c resultColumn) numeric() bool {
	switch {
	case strings.HasPrefix(c.dbType, "DECIMAL"):
		return true
	}
	switch c.dbType {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE":
		return true
	}
	return false
}

type formatter interface {
	row(vals []any) error
	end() error
}

// text renders a non-NULL value the way DuckDB's own shell shows it.
func text(v any, dbType string) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		if dbType == "UUID" && len(v) == 16 {
			u := duckdb.UUID(v)
			return u.String()
		}
		return `\x` + hex.EncodeToString(v)
	case time.Time:
		return timeText(v, dbType)
	case duckdb.Decimal:
		return decimalText(v)
	case float64:
		return floatText(v)
	case float32:
		return floatText(float64(v))
	case bool:
		return strconv.FormatBool(v)
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Sprint(v)
	case *big.Int:
		return v.String()
	default:
		// Lists, structs, maps, JSON and other composites show as JSON.
		b, err := json.Marshal(jsonable(v))
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// DuckDB's infinite timestamps and dates as the Go driver returns them:
// the extreme microsecond and day counts.
var (
	infTimestamp    = time.UnixMicro(math.MaxInt64)
	negInfTimestamp = time.UnixMicro(-math.MaxInt64)
	infDate         = time.Unix(math.MaxInt32*86400, 0)
	negInfDate      = time.Unix(-math.MaxInt32*86400, 0)
)

// timeText shows a time as DuckDB's shell does, infinities as "infinity"
// and "-infinity"; years before 1 in ISO 8601's astronomical numbering
// ("-0001" is 2 BC), years after 9999 with all their digits.
func timeText(t time.Time, dbType string) string {
	switch {
	case t.Equal(infTimestamp) || dbType == "DATE" && t.Equal(infDate):
		return "infinity"
	case t.Equal(negInfTimestamp) || dbType == "DATE" && t.Equal(negInfDate):
		return "-infinity"
	}
	switch dbType {
	case "DATE":
		return t.Format("2006-01-02")
	case "TIME":
		return t.Format("15:04:05.999999")
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
	default:
		return t.Format("2006-01-02 15:04:05.999999")
	}
}

func floatText(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// decimalText shows a decimal with its full scale ("12.50" for DECIMAL(p,2)),
// which duckdb.Decimal.String trims.
func decimalText(d duckdb.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	s := new(big.Int).Abs(d.Value).String()
	scale := int(d.Scale)
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	if scale > 0 {
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if d.Value.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// jsonable converts what database/sql returns from DuckDB into values
// encoding/json renders faithfully: exact decimals and big integers as
// numbers, times as ISO 8601 text, maps with any keys as objects.
func jsonable(v any) any {
	switch v := v.(type) {
	case duckdb.Decimal:
		return json.Number(decimalText(v))
	case *big.Int:
		return json.Number(v.String())
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return floatText(v)
		}
		return v
	case time.Time:
		if v.Equal(infTimestamp) || v.Equal(negInfTimestamp) {
			return timeText(v, "TIMESTAMP")
		}
		return v.Format(time.RFC3339Nano)
	case []byte:
		return `\x` + hex.EncodeToString(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonable(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonable(x)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(jsonable(k))] = jsonable(x)
		}
		return out
	case duckdb.Union:
		return jsonable(v.Value)
	default:
		return v
	}
}

// tableFormatter writes an aligned table, psql style, in pages.
type tableFormatter struct {
	w       *bufio.Writer
	cols    []resultColumn
	widths  []int
	page    [][]string // rendered cells of the rows not written yet
	bytes   int        // text in page
	header  bool
	written int
}

func (f *tableFormatter) row(vals []any) error {
	cells := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			cells[i] = "NULL"
			continue
		}
		cells[i] = cellText(text(v, f.cols[i].dbType))
		f.bytes += len(cells[i])
	}
	f.page = append(f.page, cells)
	if len(f.page) == tablePage || f.bytes >= tablePageBytes {
		return f.flush()
	}
	return nil
}

// cellText keeps a value on one line, control characters escaped, and cuts
// it after maxCell characters.
var cellEscaper = strings.NewReplacer("\\", "\\\\", "\n", `\n`, "\r", `\r`, "\t", `\t`)

func cellText(s string) string {
	if len(s) > maxCell {
		if i := runeOffset(s, maxCell); i < len(s) {
			s = s[:i] + "…"
		}
	}
	if strings.ContainsAny(s, "\\\n\r\t") {
		return cellEscaper.Replace(s)
	}
	return s
}

// runeOffset is the byte offset of the n-th rune of s, or len(s).
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

func (f *tableFormatter) flush() error {
	if f.widths == nil {
		f.widths = make([]int, len(f.cols))
		for i, c := range f.cols {
			f.widths[i] = runewidth.StringWidth(cellText(c.name))
		}
	}
	for _, cells := range f.page {
		for i, c := range cells {
			f.widths[i] = max(f.widths[i], runewidth.StringWidth(c))
		}
	}
	if !f.header {
		f.header = true
		names := make([]string, len(f.cols))
		for i, c := range f.cols {
			names[i] = cellText(c.name)
		}
		f.line(names, func(int) bool { return false })
		for i, w := range f.widths {
			if i > 0 {
				f.w.WriteString("-+-")
			}
			f.w.WriteString(strings.Repeat("-", w))
		}
		f.w.WriteByte('\n')
	}
	for _, cells := range f.page {
		f.line(cells, func(i int) bool { return f.cols[i].numeric() })
	}
	f.written += len(f.page)
	f.page, f.bytes = f.page[:0], 0
	return nil
}

func (f *tableFormatter) line(cells []string, right func(int) bool) {
	for i, c := range cells {
		if i > 0 {
			f.w.WriteString(" | ")
		}
		pad := strings.Repeat(" ", f.widths[i]-runewidth.StringWidth(c))
		last := i == len(cells)-1
		switch {
		case right(i):
			f.w.WriteString(pad)
			f.w.WriteString(c)
		case last:
			// No trailing blanks.
			f.w.WriteString(c)
		default:
			f.w.WriteString(c)
			f.w.WriteString(pad)
		}
	}
	f.w.WriteByte('\n')
}

func (f *tableFormatter) end() error {
	if err := f.flush(); err != nil {
		return err
	}
	if f.written == 1 {
		_, err := f.w.WriteString("(1 row)\n")
		return err
	}
	_, err := fmt.Fprintf(f.w, "(%d rows)\n", f.written)
	return err
}

// csvFormatter writes RFC 4180 CSV with a header line, each line ending in
// LF as psql --csv and duckdb -csv end theirs (a CR LF inside a value is
// kept, quoted). A field is quoted when it must be, and an empty string
// always, so that it differs from NULL.
type csvFormatter struct {
	w      *bufio.Writer
	cols   []resultColumn
	header bool
}

// writeHeader names the columns once, before the first row or at the end
// of an empty result.
func (f *csvFormatter) writeHeader() {
	if f.header {
		return
	}
	f.header = true
	for i, c := range f.cols {
		if i > 0 {
			f.w.WriteByte(',')
		}
		writeCSVField(f.w, c.name)
	}
	f.w.WriteByte('\n')
}

func (f *csvFormatter) row(vals []any) error {
	f.writeHeader()
	for i, v := range vals {
		if i > 0 {
			f.w.WriteByte(',')
		}
		if v != nil {
			writeCSVField(f.w, text(v, f.cols[i].dbType))
		}
	}
	return f.w.WriteByte('\n')
}

// writeCSVField writes s as one field; the empty string is quoted, so
// that it differs from NULL.
func writeCSVField(w *bufio.Writer, s string) {
	w.Write(csvfield.Append(w.AvailableBuffer(), s, true))
}

func (f *csvFormatter) end() error {
	f.writeHeader()
	return nil
}

// jsonFormatter writes one object per row, keys in column order, either
// as the elements of an array or one per line.
type jsonFormatter struct {
	w     *bufio.Writer
	cols  []resultColumn
	keys  [][]byte
	array bool
	n     int
}

func (f *jsonFormatter) row(vals []any) error {
	if f.keys == nil {
		f.keys = make([][]byte, len(f.cols))
		for i, c := range f.cols {
			k, err := json.Marshal(c.name)
			if err != nil {
				return fmt.Errorf("column %q: %w", c.name, err)
			}
			f.keys[i] = k
		}
	}
	switch {
	case f.array && f.n == 0:
		f.w.WriteString("[\n")
	case f.array:
		f.w.WriteString(",\n")
	}
	f.n++
	f.w.WriteByte('{')
	first := true
	for i, v := range vals {
		if v == nil && f.cols[i].jsonText {
			// SQL NULL in a JSON column is the key left out, so that it
			// differs from the document null (the key with null); a
			// reader that asks for the key gets null for both (jq's
			// .doc, JavaScript's row.doc == null, Python's row.get),
			// one that tells absent from null (has("doc"), "doc" in
			// row) gets SQL's answer.
			continue
		}
		if !first {
			f.w.WriteByte(',')
		}
		first = false
		f.w.Write(f.keys[i])
		f.w.WriteByte(':')
		b, err := json.Marshal(f.value(v, f.cols[i]))
		if err != nil {
			return fmt.Errorf("column %q: %w", f.cols[i].name, err)
		}
		f.w.Write(b)
	}
	f.w.WriteByte('}')
	if !f.array {
		f.w.WriteByte('\n')
	}
	return nil
}

// value is what a cell becomes in JSON: JSON columns embed their document,
// UUIDs and times are strings, decimals exact numbers.
func (f *jsonFormatter) value(v any, c resultColumn) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if c.jsonText && json.Valid([]byte(x)) {
			return json.RawMessage(x)
		}
	case []byte:
		return text(x, c.dbType)
	case time.Time:
		return timeText(x, c.dbType)
	}
	return jsonable(v)
}

func (f *jsonFormatter) end() error {
	if !f.array {
		return nil
	}
	if f.n == 0 {
		_, err := f.w.WriteString("[]\n")
		return err
	}
	_, err := f.w.WriteString("\n]\n")
	return err
}
