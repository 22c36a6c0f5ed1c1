package sqldb

import (
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lakelink/lakelink/internal/lake"
)

// mainSchema is DuckDB's default schema: the one bare names resolve in.
const mainSchema = "main"

// sqlName is a view's place in DuckDB's catalog.
type sqlName struct{ schema, name string }

// sql is the name quoted for a statement.
func (n sqlName) sql() string { return quoteIdent(n.schema) + "." + quoteIdent(n.name) }

// key is the name as DuckDB compares it: schemas and names ignore case.
func (n sqlName) key() string { return strings.ToLower(n.schema) + "\x00" + strings.ToLower(n.name) }

// String is the name as a query writes it (unquoted), for messages.
func (n sqlName) String() string {
	if n.schema == mainSchema {
		return n.name
	}
	return n.schema + "." + n.name
}

// catalogTables are the sys catalog tables (catalogDDL): no view may take
// their names.
var catalogTables = []sqlName{{"sys", "external_tables"}, {"sys", "external_file_formats"}, {"sys", "external_data_sources"}}

// viewDef is what one view shows: a table's current data, or its newest
// snapshot when partitioned is set.
type viewDef struct {
	table       *lake.TableState
	partitioned bool
	// alias marks a second name of a view (the bare name of a
	// schema-qualified table, or its lake name as one identifier); aliases
	// are not listed in sys.external_tables.
	alias bool
}

// splitName returns the schema and table a lake table name stands for. A
// PostgreSQL table is named schema.table in the lake (as the link spells
// it, lower-cased; either part may be double-quoted, with "" for a quote),
// so it becomes view table in schema schema. A Dataverse logical name never
// holds a dot or a quote, nor does any other one-part name, so those stay
// in the main schema: a Dataverse table "public" and the schema "public" of
// a PostgreSQL table are different catalog entries and never collide.
func splitName(table string) (schema, name string, ok bool) {
	var parts []string
	for rest := table; ; {
		var part string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			var b strings.Builder
			for {
				i := strings.IndexByte(rest[end:], '"')
				if i < 0 {
					return "", "", false // an unterminated quote is not SQL
				}
				b.WriteString(rest[end : end+i])
				end += i + 1
				if !strings.HasPrefix(rest[end:], `"`) {
					break
				}
				b.WriteByte('"')
				end++
			}
			part, rest = b.String(), rest[end:]
		} else {
			i := strings.IndexAny(rest, `."`)
			if i < 0 {
				i = len(rest)
			}
			part, rest = rest[:i], rest[i:]
		}
		if part == "" {
			return "", "", false
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		if !strings.HasPrefix(rest, ".") {
			return "", "", false // a quoted part followed by more text
		}
		rest = rest[1:]
	}
	if len(parts) != 2 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// viewNames returns every view the state needs, by SQL name.
//
//   - A table the lake names schema.table (PostgreSQL) is the view table
//     in schema schema (SELECT * FROM public.orders), its snapshot
//     table_partitioned next to it; any other table (Dataverse) is a view
//     of its name in the main schema.
//   - A schema-qualified table is also reachable by its bare name (orders,
//     orders_partitioned) when no other view or table of the lake needs
//     that name in the main schema; an ambiguous bare name (public.orders
//     next to sales.orders, or a table named orders) is left out rather
//     than guessed.
//   - Its lake name as one identifier ("public.orders"), the only name
//     before schemas were used, stays when free.
//
// Two tables whose own names differ only by case (DuckDB names ignore
// case), or one named like another's _partitioned view or like a metadata
// or catalog table, are a *NameConflictError.
func viewNames(state *lake.State) (map[sqlName]viewDef, error) {
	owner := map[string]string{} // sqlName.key() -> lake table (or metadata table) owning it
	for _, m := range metaTables {
		owner[sqlName{mainSchema, m.name}.key()] = m.name
	}
	for _, c := range catalogTables {
		owner[c.key()] = c.String()
	}
	views := map[sqlName]viewDef{}
	var tables []*lake.TableState
	for _, t := range sortedTables(state) {
		if len(t.Columns) == 0 {
			// No layout yet: nothing to show, not even types.
			continue
		}
		tables = append(tables, t)
		schema, name, ok := splitName(t.Name)
		if !ok {
			schema, name = mainSchema, t.Name
		}
		for _, v := range []struct {
			n           sqlName
			partitioned bool
		}{{sqlName{schema, name}, false}, {sqlName{schema, name + partitionedSuffix}, true}} {
			if other, ok := owner[v.n.key()]; ok {
				return nil, &NameConflictError{Name: v.n.String(), Table: t.Name, Other: other}
			}
			owner[v.n.key()] = t.Name
			views[v.n] = viewDef{table: t, partitioned: v.partitioned}
		}
	}
	// Bare names: claimed only by a name no table owns and exactly one
	// schema-qualified table wants.
	bare := map[string][]sqlName{}
	for n := range views {
		if n.schema == mainSchema {
			continue
		}
		b := sqlName{mainSchema, n.name}
		if _, taken := owner[b.key()]; !taken {
			bare[b.key()] = append(bare[b.key()], n)
		}
	}
	for _, want := range bare {
		if len(want) == 1 {
			def := views[want[0]]
			def.alias = true
			b := sqlName{mainSchema, want[0].name}
			owner[b.key()] = def.table.Name
			views[b] = def
		}
	}
	for _, t := range tables {
		if _, _, ok := splitName(t.Name); !ok {
			continue
		}
		for _, v := range []struct {
			name        string
			partitioned bool
		}{{t.Name, false}, {t.Name + partitionedSuffix, true}} {
			n := sqlName{mainSchema, v.name}
			if _, taken := owner[n.key()]; !taken {
				owner[n.key()] = t.Name
				views[n] = viewDef{table: t, partitioned: v.partitioned, alias: true}
			}
		}
	}
	return views, nil
}

// external is the view's row name in sys.external_tables (and its object
// identity): the lake table's name, with _partitioned for the snapshot.
func (d viewDef) external() string {
	if d.partitioned {
		return d.table.Name + partitionedSuffix
	}
	return d.table.Name
}

// need is what a statement needs the catalog to hold. Views are created
// when a statement first needs them, not all at Open: on a lake of
// thousands of tables creating every view takes seconds, a query of one
// table needs one.
type need struct {
	// all: every view, the metadata tables and the catalog (a statement
	// that lists the catalog: SHOW TABLES, information_schema,
	// duckdb_tables(), ...; and WaitCache).
	all bool
	// words are the statement's identifiers and quoted texts, lower-cased:
	// every view named like one of them is created (a column or alias
	// named like a table costs that view, never a wrong answer).
	words map[string]bool
	// listing: the statement is SHOW, DESCRIBE, SUMMARIZE or PRAGMA; it
	// needs every view unless it names one (DESCRIBE orders).
	listing bool
}

// introspection are words of statements that read the catalog itself, so
// that every view must exist first; so do words starting with duckdb_,
// pg_ or sqlite_ (duckdb_tables(), pg_catalog.pg_class, sqlite_master).
var introspection = map[string]bool{"information_schema": true, "show_tables": true, "show_tables_expanded": true}

// needOf reads what the statement q needs: every run of identifier
// characters, and the text inside each pair of double or single quotes
// (a quoted name such as "line items" or "public.orders", a table name
// given as a string to query_table('orders')). It over-approximates on
// purpose and never parses SQL: a name it misses still resolves, since
// Query creates a view that DuckDB reports missing and runs the statement
// again.
func needOf(q string) need {
	n := need{words: map[string]bool{}}
	first := true
	word := func(w string) {
		w = strings.ToLower(w)
		if first {
			n.listing = w == "show" || w == "describe" || w == "summarize" || w == "pragma"
			first = false
		}
		n.words[w] = true
		if introspection[w] || strings.HasPrefix(w, "duckdb_") || strings.HasPrefix(w, "pg_") || strings.HasPrefix(w, "sqlite_") {
			n.all = true
		}
	}
	start := -1
	for i, r := range q {
		if r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			word(q[start:i])
			start = -1
		}
	}
	if start >= 0 {
		word(q[start:])
	}
	for _, quote := range []byte{'"', '\''} {
		parts := strings.Split(q, string(quote))
		for i := 1; i < len(parts); i += 2 {
			// A doubled quote inside splits into an empty part: glue it back.
			text := parts[i]
			for i+2 < len(parts) && parts[i+1] == "" {
				text += string(quote) + parts[i+2]
				i += 2
			}
			n.words[strings.ToLower(text)] = true
		}
	}
	return n
}

// missingTable finds the name in DuckDB's error for a table that does not
// exist: `Table with name orders does not exist!`, `Table with name
// "nosch.t" does not exist because schema "nosch" does not exist`.
var missingTable = regexp.MustCompile(`Table with name (.+?) does not exist`)

// missingNeed is what a statement that failed with err needs, when err
// says a table does not exist: the name DuckDB reports, and its parts.
func missingNeed(err error) (need, bool) {
	var de *duckdb.Error
	if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeCatalog {
		return need{}, false
	}
	m := missingTable.FindStringSubmatch(de.Msg)
	if m == nil {
		return need{}, false
	}
	name := strings.ToLower(strings.Trim(m[1], `"`))
	n := need{words: map[string]bool{name: true}}
	for _, part := range strings.Split(name, ".") {
		n.words[part] = true
	}
	return n, true
}

// nameIndex maps each lower-case view name (without its schema) to the
// views of that name, for need.words.
func nameIndex(defs map[sqlName]viewDef) map[string][]sqlName {
	index := make(map[string][]sqlName, len(defs))
	for n := range defs {
		k := strings.ToLower(n.name)
		index[k] = append(index[k], n)
	}
	return index
}

// metaWords and catalogWords are the names (lower case) of the metadata
// and catalog tables: a statement that names one needs them filled.
var metaWords, catalogWords = func() (map[string]bool, map[string]bool) {
	meta, catalog := map[string]bool{}, map[string]bool{}
	for _, m := range metaTables {
		meta[strings.ToLower(m.name)] = true
	}
	for _, c := range catalogTables {
		catalog[c.name] = true
	}
	return meta, catalog
}()

// wants reports whether n needs any of words.
func (n need) wants(words map[string]bool) bool {
	if n.all {
		return true
	}
	for w := range words {
		if n.words[w] {
			return true
		}
	}
	return false
}
