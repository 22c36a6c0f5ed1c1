package sqldb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
)

func TestSplitName(t *testing.T) {
	tests := []struct {
		table, schema, name string
		ok                  bool
	}{
		{"public.orders", "public", "orders", true},
		{`"my schema".orders`, "my schema", "orders", true},
		{`sales."or""der.x"`, "sales", `or"der.x`, true},
		{`"a"."b"`, "a", "b", true},
		{"account", "", "", false},
		{"my table", "", "", false},
		{`we"ird`, "", "", false},
		{"a.b.c", "", "", false},
		{".a", "", "", false},
		{"a.", "", "", false},
		{"a..b", "", "", false},
		{`"open.x`, "", "", false},
		{`"a"x.b`, "", "", false},
	}
	for _, tt := range tests {
		schema, name, ok := splitName(tt.table)
		if schema != tt.schema || name != tt.name || ok != tt.ok {
			t.Errorf("splitName(%q) = %q, %q, %v; want %q, %q, %v", tt.table, schema, name, ok, tt.schema, tt.name, tt.ok)
		}
	}
}

// FuzzSplitName: a name that splits is two non-empty parts that quote back
// to a name that splits the same way.
func FuzzSplitName(f *testing.F) {
	for _, s := range []string{"public.orders", `"a"".b".c`, "x", `"`, "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, table string) {
		schema, name, ok := splitName(table)
		if !ok {
			return
		}
		if schema == "" || name == "" {
			t.Fatalf("splitName(%q) gave an empty part", table)
		}
		s2, n2, ok2 := splitName(quoteIdent(schema) + "." + quoteIdent(name))
		if !ok2 || s2 != schema || n2 != name {
			t.Fatalf("splitName(%q) = %q, %q does not survive quoting: %q, %q, %v", table, schema, name, s2, n2, ok2)
		}
	})
}

func TestViewNames(t *testing.T) {
	tests := []struct {
		name   string
		tables []string
		want   []string // "schema.name=table[/p][ alias]"
	}{
		{
			name:   "dataverse",
			tables: []string{"account"},
			want:   []string{"main.account=account", "main.account_partitioned=account/p"},
		},
		{
			name:   "postgres",
			tables: []string{"public.orders"},
			want: []string{
				"main.orders=public.orders alias", "main.orders_partitioned=public.orders/p alias",
				"main.public.orders=public.orders alias", "main.public.orders_partitioned=public.orders/p alias",
				"public.orders=public.orders", "public.orders_partitioned=public.orders/p",
			},
		},
		{
			name:   "the same table in two schemas has no bare name",
			tables: []string{"public.orders", "sales.orders"},
			want: []string{
				"main.public.orders=public.orders alias", "main.public.orders_partitioned=public.orders/p alias",
				"main.sales.orders=sales.orders alias", "main.sales.orders_partitioned=sales.orders/p alias",
				"public.orders=public.orders", "public.orders_partitioned=public.orders/p",
				"sales.orders=sales.orders", "sales.orders_partitioned=sales.orders/p",
			},
		},
		{
			name:   "a table of the bare name keeps it",
			tables: []string{"orders", "public.orders"},
			want: []string{
				"main.orders=orders", "main.orders_partitioned=orders/p",
				"main.public.orders=public.orders alias", "main.public.orders_partitioned=public.orders/p alias",
				"public.orders=public.orders", "public.orders_partitioned=public.orders/p",
			},
		},
		{
			name:   "a table named like the schema",
			tables: []string{"public", "public.public"},
			want: []string{
				"main.public.public=public.public alias", "main.public.public_partitioned=public.public/p alias", "main.public=public",
				"main.public_partitioned=public/p",
				"public.public=public.public", "public.public_partitioned=public.public/p",
			},
		},
		{
			name:   "a bare name taken by a metadata table",
			tables: []string{"public.optionsetmetadata"},
			want: []string{
				"main.optionsetmetadata_partitioned=public.optionsetmetadata/p alias",
				"main.public.optionsetmetadata=public.optionsetmetadata alias", "main.public.optionsetmetadata_partitioned=public.optionsetmetadata/p alias",
				"public.optionsetmetadata=public.optionsetmetadata", "public.optionsetmetadata_partitioned=public.optionsetmetadata/p",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &lake.State{Tables: map[string]*lake.TableState{}}
			for _, n := range tt.tables {
				st.Tables[n] = nameTable(n)
			}
			defs, err := viewNames(st)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for n, d := range defs {
				s := n.schema + "." + n.name + "=" + d.table.Name
				if d.partitioned {
					s += "/p"
				}
				if d.alias {
					s += " alias"
				}
				got = append(got, s)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSchemaNameConflict(t *testing.T) {
	tests := [][]string{
		{"public.orders", `"Public"."Orders"`},
		{"public.a", "public.a_partitioned"},
		{"sys.external_tables"},
	}
	for _, tables := range tests {
		st := &lake.State{Tables: map[string]*lake.TableState{}}
		for _, n := range tables {
			st.Tables[n] = nameTable(n)
		}
		var ce *NameConflictError
		if _, err := viewNames(st); !errors.As(err, &ce) {
			t.Errorf("%v: got %v, want a *NameConflictError", tables, err)
		}
	}
}

// TestSchemaQualifiedQueries queries PostgreSQL tables by every name they
// have, next to a Dataverse-style table named like their schema, through
// commits that add and remove tables.
func TestSchemaQualifiedQueries(t *testing.T) {
	modes(t, func(t *testing.T, open func(l *testLake) *DB) {
		l := newTestLake(t)
		for i, n := range []string{"public.orders", "public", `"my schema"."line items"`} {
			tab := nameTable(n)
			tab.Files = []lake.File{l.write(fmt.Sprintf("t%d/2020_1_1.csv", i), row(i+1, n, 1, false))}
			tab.Snapshots = []lake.Snapshot{{Files: tab.Files}}
			l.commit(tab)
		}
		db := open(l)
		for q, want := range map[string]string{
			"SELECT name FROM public.orders":                                    "public.orders",
			"SELECT name FROM PUBLIC.Orders":                                    "public.orders",
			"SELECT name FROM orders":                                           "public.orders",
			`SELECT name FROM "public.orders"`:                                  "public.orders",
			"SELECT name FROM public.orders_partitioned":                        "public.orders",
			"SELECT name FROM orders_partitioned":                               "public.orders",
			`SELECT name FROM "public.orders_partitioned"`:                      "public.orders",
			"SELECT name FROM public":                                           "public",
			"SELECT name FROM main.public":                                      "public",
			`SELECT name FROM "my schema"."line items"`:                         `"my schema"."line items"`,
			`SELECT name FROM "line items"`:                                     `"my schema"."line items"`,
			`SELECT count(*) FROM "my schema"."line items" JOIN orders ON true`: "1",
		} {
			if got := query(t, db, q); !slices.Equal(got, []string{want}) {
				t.Errorf("%s: got %v, want %s", q, got, want)
			}
		}
		if got := query(t, db, `SELECT name FROM sys.external_tables WHERE name LIKE '%orders%' ORDER BY name`); !slices.Equal(got, []string{"public.orders", "public.orders_partitioned"}) {
			t.Errorf("sys.external_tables lists %v, want the lake names once each", got)
		}

		// A second orders makes the bare name ambiguous: it goes, the
		// qualified names stay.
		tab := nameTable("sales.orders")
		tab.Files = []lake.File{l.write("t9/2020_1_1.csv", row(9, "sales.orders", 1, false))}
		l.commit(tab)
		if _, err := db.Query(t.Context(), "SELECT * FROM orders"); err == nil {
			t.Error("orders is ambiguous with public.orders and sales.orders, yet it still answers")
		}
		if got := query(t, db, "SELECT name FROM sales.orders UNION ALL SELECT name FROM public.orders ORDER BY 1"); !slices.Equal(got, []string{"public.orders", "sales.orders"}) {
			t.Errorf("qualified names: got %v", got)
		}
		// Dropping the only table of a schema drops the schema.
		l.drop(`"my schema"."line items"`)
		if got := query(t, db, `SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'my schema'`); !slices.Equal(got, []string{"0"}) {
			t.Errorf("the schema of a removed table stays: %v", got)
		}
	})
}
