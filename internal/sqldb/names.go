package sqldb

import (
	"strings"

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
