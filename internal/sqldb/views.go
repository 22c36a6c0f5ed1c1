package sqldb

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// Column names the merge-on-read view relies on, matched case-insensitively.
const (
	idColumn      = "Id"
	versionColumn = "versionnumber"
	deleteColumn  = "IsDelete"
	sinkCreated   = "SinkCreatedOn"
	sinkModified  = "SinkModifiedOn"
	// fileColumn carries a change row's file position, computed from
	// pathColumn, the file read_csv read it from (its default name,
	// "filename", could be a source column). Odd names keep both clear of
	// source columns.
	fileColumn = "__lakelink_file"
	pathColumn = "__lakelink_path"
)

// sinkFormat parses SinkCreatedOn/SinkModifiedOn ("4/14/2026 8:21:50 PM");
// DuckDB's %m, %d and %I accept one or two digits.
const sinkFormat = "%m/%d/%Y %I:%M:%S %p"

// csvOptions are the read_csv options every view uses. Every dialect option
// is fixed, so nothing is sniffed: with auto_detect=false DuckDB still guesses
// the line separator (and the comment and skip options) from a sample, and a
// value holding "\r\n" in a file of "\n" records made it guess "\r\n" and
// fail every query of the table. Invariant: lakelink writes UTF-8 records
// ending in "\n", so new_line='\n' with strict_mode reads exactly what was
// written and refuses anything else rather than guessing. null_padding reads
// rows written under an older, shorter layout (missing trailing fields are
// NULL); DuckDB's parallel scanner cannot combine it with quoted newlines, so
// each file is scanned by one thread (several files still scan in parallel).
// allow_quoted_nulls=false keeps "" an empty string while an empty field is
// NULL. max_line_size admits rows with multi-megabyte text values (Dataverse
// multi-line text holds up to 1M characters, 4 MB of UTF-8 at most);
// buffer_size is set with it because DuckDB's default (16 times the line
// size) would take a large share of the memory limit per file scanned.
const csvOptions = `header=false, auto_detect=false, delim=',', quote='"', escape='"', ` +
	`new_line='\n', encoding='utf-8', strict_mode=true, comment='', skip=0, ` +
	`null_padding=true, parallel=false, allow_quoted_nulls=false, max_line_size=8388608, buffer_size=16777216`

// maxFastDecimal is the widest DECIMAL that DuckDB converts quickly: wider
// ones (128-bit) convert about 20 times slower, so values that fit go
// through the narrow type.
const maxFastDecimal = 18

// column is how one lake column is read and shown. read_csv reads every
// field as VARCHAR and the view converts it: DuckDB then applies a query's
// filters before converting the other columns of a row (a lookup by Id
// converts one column of the rows it skips), which makes selective queries
// about twice as fast as typed parsing and costs nothing elsewhere.
type column struct {
	// name is the view's column name: the lake column's, made unique.
	name string
	// field names the text field in read_csv's output: the position, since
	// lake names may clash where SQL ignores case.
	field string
	// system marks the columns lakelink adds.
	system bool
	// sqlType is the type the view exposes.
	sqlType string
	// expr converts the text field to sqlType.
	expr string
}

// columns maps a table's lake layout to DuckDB columns. SQL names ignore
// case, so a source column whose name clashes with another (a Postgres "id"
// next to lakelink's Id) is shown as <name>_2 (or _3...); lakelink's own
// columns keep their names.
func columns(cols []lake.Column) []column {
	names := lake.ColumnNames(cols)
	out := make([]column, 0, len(cols))
	for i, c := range cols {
		q := fmt.Sprintf("f%d", i)
		col := column{name: names[i], field: q, system: c.System}
		switch {
		case strings.EqualFold(col.name, sinkCreated) || strings.EqualFold(col.name, sinkModified):
			// By the unique name: a source column that clashes was renamed.
			col.sqlType = "TIMESTAMP"
			col.expr = fmt.Sprintf("strptime(%s, '%s')", q, sinkFormat)
		case c.Type == schema.Decimal:
			p, s := decimalShape(c.Precision, c.Scale)
			col.sqlType = fmt.Sprintf("DECIMAL(%d,%d)", p, s)
			col.expr = fmt.Sprintf("CAST(%s AS %s)", q, col.sqlType)
			if p > maxFastDecimal && s <= maxFastDecimal {
				col.expr = fmt.Sprintf("coalesce(TRY_CAST(%s AS DECIMAL(%d,%d)), %s)", q, maxFastDecimal, s, col.expr)
			}
		default:
			col.sqlType = duckType(c.Type)
			col.expr = fmt.Sprintf("CAST(%s AS %s)", q, col.sqlType)
			if col.sqlType == "VARCHAR" {
				col.expr = q
			}
		}
		out = append(out, col)
	}
	return out
}

// duckType maps the CDM types DuckDB converts with a plain CAST. An unknown
// type is shown as text rather than failing every query on the table.
func duckType(t schema.Type) string {
	switch t {
	case schema.Guid:
		return "UUID"
	case schema.Int64:
		return "BIGINT"
	case schema.Boolean:
		return "BOOLEAN"
	case schema.DateTime:
		return "TIMESTAMP"
	case schema.DateTimeOffset:
		return "TIMESTAMPTZ"
	case schema.Double:
		return "DOUBLE"
	case schema.JSON:
		return "JSON"
	default:
		return "VARCHAR"
	}
}

// decimalShape applies the lake default (38,10) and DuckDB's bounds.
func decimalShape(p, s int) (int, int) {
	if p <= 0 {
		p, s = 38, 10
	}
	p = min(p, 38)
	s = max(min(s, p), 0)
	return p, s
}

// readFiles is a FROM item over the given CSV objects with the text columns,
// plus fileColumn (the file's 1-based position in paths) when withFile is
// set. With no files it is an empty relation of the same columns, so that a
// table without data still has a typed view.
func readFiles(cols []column, paths []string, withFile bool) string {
	var b strings.Builder
	if len(paths) == 0 {
		b.WriteString("(SELECT ")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "CAST(NULL AS VARCHAR) AS %s", c.field)
		}
		if withFile {
			fmt.Fprintf(&b, ", CAST(NULL AS BIGINT) AS %s", fileColumn)
		}
		b.WriteString(" WHERE false)")
		return b.String()
	}
	if withFile {
		fmt.Fprintf(&b, "(SELECT * EXCLUDE (%s), ", pathColumn)
		fmt.Fprintf(&b, "CAST(list_position(%s, %s) AS BIGINT) AS %s FROM ", stringList(paths), pathColumn, fileColumn)
	}
	globs := make([]string, len(paths))
	for i, p := range paths {
		globs[i] = globEscape(p)
	}
	fmt.Fprintf(&b, "read_csv(%s, columns={", stringList(globs))
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: 'VARCHAR'", quoteString(c.field))
	}
	b.WriteString("}, ")
	b.WriteString(csvOptions)
	if withFile {
		fmt.Fprintf(&b, ", filename=%s))", quoteString(pathColumn))
	} else {
		b.WriteString(")")
	}
	return b.String()
}

// selectList converts the text columns to the view's types, keeping names.
func selectList(cols []column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.expr + " AS " + quoteIdent(c.name)
	}
	return strings.Join(parts, ", ")
}

// find returns the SQL name of the system column name, or "". A layout
// without System marks (written before they existed) falls back to any
// column of that name.
func find(cols []column, name string) string {
	for _, c := range cols {
		if c.system && strings.EqualFold(c.name, name) {
			return c.name
		}
	}
	for _, c := range cols {
		if strings.EqualFold(c.name, name) {
			return c.name
		}
	}
	return ""
}

// fileSet is what a view reads for a list of lake files: the Parquet cache
// files of those converted already, the CSV locations of the others.
type fileSet struct {
	parquet []string
	csv     []string
}

// liveView is the SQL of the <table> view over the partition files base
// and the change files changes (CSV locations, oldest first).
//
// Append-only tables show every change row as written (Synapse semantics).
// In-place tables without change files show their partition files. With
// change files, the latest row per Id wins by versionnumber; on equal
// versions the later file wins (partition files are older than every change
// file, change files are oldest first), and a winning row with IsDelete
// removes the record.
//
// When no partition file is cached, the merge works on the text fields and
// converts them only after picking the winner, so DuckDB reads only the
// columns a query uses and applies its filters before converting the rest.
// Once some are cached, the partition rows are typed already, so the (few)
// change rows are converted first and the merge works on typed values; the
// result is the same.
func liveView(t *lake.TableState, cols []column, base fileSet, changes []string) string {
	id, version, del := find(cols, idColumn), find(cols, versionColumn), find(cols, deleteColumn)
	if !merges(t, cols) {
		all := base
		all.csv = append(slices.Clip(all.csv), changes...)
		return plainView(cols, all)
	}
	if len(base.parquet) == 0 {
		return mergeView(cols, readFiles(cols, base.csv, false), readFiles(cols, changes, true), id, version, del)
	}
	changed := "(SELECT " + convertList(cols) + ", " + fileColumn + " FROM " + readFiles(cols, changes, true) + ")"
	return mergeView(typed(cols), typedFiles(cols, base), changed, id, version, del)
}

// merges reports whether the <table> view of t (columns cols) merges change
// files into its partition files: an in-place table with changes that no
// compaction folded in yet. Only then may its view count other than
// t.Rows (CountRows).
func merges(t *lake.TableState, cols []column) bool {
	return !t.Options.AppendOnly && len(t.Changes) > 0 && find(cols, idColumn) != ""
}

// mergeView is the merge-on-read of the partition rows base and the change
// rows changes (with fileColumn); cols convert their fields to the view's
// columns.
//
// The partition files hold one row per Id, so only the (few) change rows
// are ranked, into one latest change per Id. That small set is then joined
// to the partition rows in one streaming pass (a full outer join whose hash
// table holds the latest changes only): per Id, the change replaces the
// partition row unless the partition row is newer (a change re-delivered
// after compaction). Nothing is materialised but the latest changes. Ids
// are compared as text or as UUIDs alike: the writer spells each Id one way
// (GUIDs in canonical lower case).
func mergeView(cols []column, base, changes, id, version, del string) string {
	field := func(name string) string {
		return cols[slices.IndexFunc(cols, func(c column) bool { return c.name == name })].field
	}
	fid := field(id)
	ver := func(alias string) string {
		if version == "" {
			return "0"
		}
		return fmt.Sprintf("coalesce(CAST(%s.%s AS BIGINT), -9223372036854775808)", alias, field(version))
	}
	// A CTE would keep DuckDB from pruning unused columns, so the latest
	// changes are a plain subquery, used once.
	latest := fmt.Sprintf("(SELECT * FROM %s c QUALIFY row_number() OVER (PARTITION BY c.%s ORDER BY %s DESC, c.%s DESC) = 1)",
		changes, fid, ver("c"), fileColumn)
	var b strings.Builder
	b.WriteString("SELECT " + selectList(cols) + " FROM (SELECT ")
	// __w: the change wins.
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CASE WHEN __w THEN __l%d ELSE __b%d END AS %s", i, i, c.field)
	}
	b.WriteString(" FROM (SELECT ")
	for i, c := range cols {
		fmt.Fprintf(&b, "b.%s AS __b%d, l.%s AS __l%d, ", c.field, i, c.field, i)
	}
	fmt.Fprintf(&b, "l.%s IS NOT NULL AND (b.%s IS NULL OR %s >= %s) AS __w ", fid, fid, ver("l"), ver("b"))
	fmt.Fprintf(&b, "FROM %s b FULL OUTER JOIN %s l ON l.%s = b.%s)", base, latest, fid, fid)
	if del != "" {
		d := slices.IndexFunc(cols, func(c column) bool { return c.name == del })
		fmt.Fprintf(&b, " WHERE NOT coalesce(CAST(CASE WHEN __w THEN __l%d ELSE __b%d END AS BOOLEAN), false)", d, d)
	}
	b.WriteString(")")
	return b.String()
}

// plainView is every row of the files, converted.
func plainView(cols []column, files fileSet) string {
	if len(files.parquet) == 0 {
		return "SELECT " + selectList(cols) + " FROM " + readFiles(cols, files.csv, false)
	}
	return "SELECT " + selectList(typed(cols)) + " FROM " + typedFiles(cols, files)
}

// typed is cols reading fields that hold the view's types already.
func typed(cols []column) []column {
	out := slices.Clone(cols)
	for i := range out {
		out[i].expr = out[i].field
	}
	return out
}

// typedFiles is a FROM item over files with one typed column per field:
// the cache files as written, the CSV files converted as the cache
// conversion does, so a file reads the same before and after it is cached.
func typedFiles(cols []column, files fileSet) string {
	var parts []string
	if len(files.parquet) > 0 {
		casts := make([]string, len(cols))
		for i, c := range cols {
			// Parquet may not carry DuckDB's type (JSON); a cast to the
			// same type is free.
			casts[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", c.field, c.sqlType, c.field)
		}
		globs := make([]string, len(files.parquet))
		for i, p := range files.parquet {
			globs[i] = globEscape(p)
		}
		parts = append(parts, "SELECT "+strings.Join(casts, ", ")+" FROM read_parquet("+stringList(globs)+")")
	}
	if len(files.csv) > 0 {
		parts = append(parts, "SELECT "+convertList(cols)+" FROM "+readFiles(cols, files.csv, false))
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// newestSnapshot is the files of the table's newest snapshot, if any.
func newestSnapshot(t *lake.TableState) []lake.File {
	if n := len(t.Snapshots); n > 0 {
		return t.Snapshots[n-1].Files
	}
	return nil
}

// globEscape makes DuckDB read the file named p rather than what p matches
// as a glob pattern: each of *, ? and [ becomes a one-character class. A
// table named "b*" must not read the files of table "bob". In a pattern
// DuckDB takes a backslash for a separator, and no class matches it; "?"
// does, so a path with both would also match a neighbour that differs in
// just that character (docs/sql.md, Limits).
func globEscape(p string) string {
	if !strings.ContainsAny(p, "*?[") {
		return p
	}
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '*', '?', '[':
			b.WriteByte('[')
			b.WriteRune(r)
			b.WriteByte(']')
		case '\\':
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stringList is a DuckDB list literal of strings.
func stringList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quoteString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quoteIdent quotes an identifier so that any name, a keyword or one with
// quotes or spaces, stands for itself.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteString is a SQL string literal.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
