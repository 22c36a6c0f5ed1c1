package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// metaTable is one of the five choice-metadata tables of a Synapse lake
// database (reference section 4), in the column order of its CSV.
type metaTable struct {
	name    string
	columns []string // "name TYPE"
	rows    func(t *schema.Table, key func(table string) string) [][]any
}

var metaTables = []metaTable{
	{
		name: "OptionsetMetadata",
		columns: []string{"EntityName VARCHAR", "OptionSetName VARCHAR", `"Option" INTEGER`,
			"IsUserLocalizedLabel BOOLEAN", "LocalizedLabelLanguageCode INTEGER", "LocalizedLabel VARCHAR"},
		rows: func(t *schema.Table, _ func(string) string) [][]any {
			var out [][]any
			for _, set := range t.OptionSets {
				if set.Global != "" {
					continue
				}
				for _, o := range set.Options {
					out = append(out, []any{t.Name, set.Column, o.Value, o.UserLocalized, o.Language, o.Label})
				}
			}
			return out
		},
	},
	{
		name: "GlobalOptionsetMetadata",
		columns: []string{"OptionSetName VARCHAR", `"Option" INTEGER`, "IsUserLocalizedLabel BOOLEAN",
			"LocalizedLabelLanguageCode INTEGER", "LocalizedLabel VARCHAR", "GlobalOptionSetName VARCHAR", "EntityName VARCHAR",
			// The eighth column of the lake's file (docs/lake-format.md):
			// FastTrack's scripts read it; Dataverse sources leave it empty.
			"ExternalValue VARCHAR"},
		rows: func(t *schema.Table, _ func(string) string) [][]any {
			var out [][]any
			for _, set := range t.OptionSets {
				if set.Global == "" {
					continue
				}
				for _, o := range set.Options {
					out = append(out, []any{set.Column, o.Value, o.UserLocalized, o.Language, o.Label, set.Global, t.Name, nil})
				}
			}
			return out
		},
	},
	{
		name: "StateMetadata",
		columns: []string{"EntityName VARCHAR", "State INTEGER", "IsUserLocalizedLabel BOOLEAN",
			"LocalizedLabelLanguageCode INTEGER", "LocalizedLabel VARCHAR"},
		rows: func(t *schema.Table, _ func(string) string) [][]any {
			var out [][]any
			for _, o := range t.States {
				out = append(out, []any{t.Name, o.Value, o.UserLocalized, o.Language, o.Label})
			}
			return out
		},
	},
	{
		name: "StatusMetadata",
		columns: []string{"EntityName VARCHAR", "State INTEGER", "Status INTEGER", "IsUserLocalizedLabel BOOLEAN",
			"LocalizedLabelLanguageCode INTEGER", "LocalizedLabel VARCHAR"},
		rows: func(t *schema.Table, _ func(string) string) [][]any {
			var out [][]any
			for _, o := range t.Statuses {
				out = append(out, []any{t.Name, o.State, o.Value, o.UserLocalized, o.Language, o.Label})
			}
			return out
		},
	},
	{
		name:    "TargetMetadata",
		columns: []string{"EntityName VARCHAR", "AttributeName VARCHAR", "ReferencedEntity VARCHAR", "ReferencedAttribute VARCHAR"},
		rows: func(t *schema.Table, key func(string) string) [][]any {
			var out [][]any
			for _, c := range t.Columns {
				for _, target := range c.Targets {
					out = append(out, []any{t.Name, c.Name, target, key(target)})
				}
			}
			return out
		},
	},
}

// referencedKey names the key column of a lookup target: the target's own
// single-column key when the lake holds the target, else the Dataverse
// convention <table>id.
func referencedKey(st *lake.State) func(string) string {
	return func(target string) string {
		if t, ok := st.Tables[target]; ok && t.Source != nil && len(t.Source.Key) == 1 {
			return t.Source.Key[0]
		}
		return target + "id"
	}
}

// insertBatch bounds the rows of one INSERT statement.
const insertBatch = 256

// insertRows inserts rows into table in multi-row statements. Values are
// written as SQL literals: DuckDB binds a parameter about ten times slower
// than it parses a literal, which made filling the metadata of 2000 tables
// take seconds. A string with a NUL (which a literal cannot hold) is bound.
func insertRows(ctx context.Context, tx *sql.Tx, table string, width int, rows [][]any) error {
	for len(rows) > 0 {
		n := min(len(rows), insertBatch)
		var b strings.Builder
		var args []any
		b.WriteString("INSERT INTO " + table + " VALUES ")
		for i, r := range rows[:n] {
			if len(r) != width {
				return fmt.Errorf("fill %s: a row of %d values, want %d", table, len(r), width)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range r {
				if j > 0 {
					b.WriteString(", ")
				}
				lit, ok := literal(v)
				if !ok {
					lit = "?"
					args = append(args, v)
				}
				b.WriteString(lit)
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("fill %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// literal is v as a SQL literal, or false when v must be bound.
func literal(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "NULL", true
	case string:
		if strings.ContainsRune(v, 0) {
			return "", false
		}
		return quoteString(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", false
		}
		return strconv.FormatFloat(v, 'g', -1, 64) + "::DOUBLE", true
	case time.Time:
		return "TIMESTAMP " + quoteString(v.UTC().Format("2006-01-02 15:04:05.999999")), true
	default:
		return "", false
	}
}

// catalogDDL creates the sys schema with the Synapse catalog views users
// query (as tables lakelink fills): the column lists follow SQL Server's
// sys.external_tables (with the sys.objects columns it inherits),
// sys.external_file_formats and sys.external_data_sources.
var catalogDDL = []string{
	`CREATE SCHEMA sys`,
	`CREATE TABLE sys.external_tables (name VARCHAR, object_id INTEGER, principal_id INTEGER, schema_id INTEGER,
		parent_object_id INTEGER, type VARCHAR, type_desc VARCHAR, create_date TIMESTAMP, modify_date TIMESTAMP,
		is_ms_shipped BOOLEAN, is_published BOOLEAN, is_schema_published BOOLEAN, max_column_id_used INTEGER,
		uses_ansi_nulls BOOLEAN, data_source_id INTEGER, file_format_id INTEGER, location VARCHAR, reject_type VARCHAR,
		reject_value DOUBLE, reject_sample_value INTEGER, distribution_type INTEGER, distribution_desc VARCHAR,
		sharding_col_id INTEGER, remote_schema_name VARCHAR, remote_object_name VARCHAR)`,
	`CREATE TABLE sys.external_file_formats (file_format_id INTEGER, name VARCHAR, format_type VARCHAR,
		field_terminator VARCHAR, string_delimiter VARCHAR, date_format VARCHAR, use_type_default BOOLEAN,
		serde_method VARCHAR, row_terminator VARCHAR, encoding VARCHAR, data_compression VARCHAR, first_row INTEGER,
		extractor VARCHAR, null_values VARCHAR, parser_version VARCHAR)`,
	`CREATE TABLE sys.external_data_sources (data_source_id INTEGER, name VARCHAR, location VARCHAR, type_desc VARCHAR,
		type SMALLINT, resource_manager_location VARCHAR, credential_id INTEGER, database_name VARCHAR,
		shard_map_name VARCHAR, connection_options VARCHAR, pushdown VARCHAR)`,
	// One format describes every lake file: header-less CSV, strings in
	// double quotes (reference section 2).
	`INSERT INTO sys.external_file_formats VALUES (1, 'SynapseLinkCsv', 'DELIMITEDTEXT', ',', '"', NULL, false,
		NULL, '\n', 'UTF8', NULL, 1, NULL, NULL, '2.0')`,
}

// The ids the catalog rows share.
const (
	dataSourceID = 1
	fileFormatID = 1
)

// external is one row of sys.external_tables.
type external struct {
	name     string
	location string
	columns  int
	// modified is when a commit last changed what the view shows (zero:
	// unknown, the commit it was first seen at stands).
	modified time.Time
}

// externals lists the SQL tables of st as sys.external_tables rows, sorted
// by name. Locations are relative to the data source (the lake root), in
// the folder-and-wildcard form Synapse shows.
func externals(st *lake.State) []external {
	var out []external
	for _, t := range st.Tables {
		if len(t.Columns) == 0 {
			continue // no layout, no view (DB.plan)
		}
		var snapshot time.Time
		if n := len(t.Snapshots); n > 0 {
			snapshot = t.Snapshots[n-1].Taken
		}
		out = append(out,
			external{name: t.Name, location: t.Name + "/*.csv", columns: len(t.Columns), modified: t.Changed},
			external{name: t.Name + partitionedSuffix, location: t.Name + "/Snapshot/*.csv", columns: len(t.Columns), modified: snapshot})
	}
	for _, m := range metaTables {
		out = append(out, external{name: m.name, location: "OptionsetMetadata/" + m.name + ".csv", columns: len(m.columns)})
	}
	slices.SortFunc(out, func(a, b external) int { return cmp.Compare(a.name, b.name) })
	return out
}

// sortedTables returns the tables of st in name order, so that refreshes
// are deterministic.
func sortedTables(st *lake.State) []*lake.TableState {
	out := slices.Collect(maps.Values(st.Tables))
	slices.SortFunc(out, func(a, b *lake.TableState) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// plannedMeta returns, per lake table, the rows of each metadata table (in
// metaTables order) and a fingerprint of them.
func plannedMeta(st *lake.State) (map[string]string, map[string][][][]any) {
	prints := map[string]string{}
	rows := map[string][][][]any{}
	key := referencedKey(st)
	for _, t := range sortedTables(st) {
		if t.Source == nil {
			continue
		}
		per := make([][][]any, len(metaTables))
		for i, m := range metaTables {
			per[i] = m.rows(t.Source, key)
		}
		rows[t.Name] = per
		prints[t.Name] = fmt.Sprint(per)
	}
	return prints, rows
}

// refreshMeta replaces the metadata rows of the tables whose rows changed.
func (db *DB) refreshMeta(ctx context.Context, tx *sql.Tx, prints map[string]string, rows map[string][][][]any) error {
	var gone []string
	for table, old := range db.meta {
		if prints[table] != old {
			gone = append(gone, quoteString(table))
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		for _, m := range metaTables {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+quoteIdent(m.name)+" WHERE EntityName IN ("+strings.Join(gone, ", ")+")"); err != nil {
				return fmt.Errorf("clear the %s rows of %d changed tables: %w", m.name, len(gone), err)
			}
		}
	}
	var changed []string
	for table, p := range prints {
		if db.meta[table] != p {
			changed = append(changed, table)
		}
	}
	slices.Sort(changed)
	// One batch of statements per metadata table, not per lake table.
	for i, m := range metaTables {
		var all [][]any
		for _, table := range changed {
			all = append(all, rows[table][i]...)
		}
		if err := insertRows(ctx, tx, quoteIdent(m.name), len(m.columns), all); err != nil {
			return err
		}
	}
	return nil
}

// refreshCatalog rewrites sys.external_tables and sys.external_data_sources
// when what they show changed, and returns their new fingerprint. objects
// gains an identity for every table it lacks.
func (db *DB) refreshCatalog(ctx context.Context, tx *sql.Tx, st *lake.State, objects map[string]object, nextID *int) (string, error) {
	ext := externals(st)
	rows := make([][]any, 0, len(ext))
	listed := make(map[string]bool, len(ext))
	for _, e := range ext {
		listed[e.name] = true
	}
	// A removed table's identity goes with it.
	maps.DeleteFunc(objects, func(name string, _ object) bool { return !listed[name] })
	for _, e := range ext {
		o, ok := objects[e.name]
		if !ok {
			o = object{id: *nextID, created: st.Committed, modified: st.Committed}
			*nextID++
		}
		if !e.modified.IsZero() {
			o.modified = e.modified
		}
		objects[e.name] = o
		rows = append(rows, []any{e.name, o.id, nil, 1, 0, "U", "USER_TABLE", o.created, o.modified,
			false, false, false, e.columns, true, dataSourceID, fileFormatID, e.location, "VALUE",
			0.0, nil, nil, nil, nil, nil, nil})
	}
	source := []any{dataSourceID, dataSourceName(st), db.st.Location(""), "NONE", 6, nil, nil, nil, nil, nil, "ON"}
	fp := fmt.Sprint(rows, source)
	if fp == db.catalog {
		return fp, nil
	}
	for _, table := range []string{"sys.external_tables", "sys.external_data_sources"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return "", fmt.Errorf("clear %s: %w", table, err)
		}
	}
	if err := insertRows(ctx, tx, "sys.external_tables", 25, rows); err != nil {
		return "", err
	}
	if err := insertRows(ctx, tx, "sys.external_data_sources", len(source), [][]any{source}); err != nil {
		return "", err
	}
	return fp, nil
}

// dataSourceName names the lake's one data source after its link.
func dataSourceName(st *lake.State) string {
	if st.Link != "" {
		return st.Link
	}
	return "lake"
}
