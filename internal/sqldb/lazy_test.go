package sqldb

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
)

// TestLazyViews: a query creates only the views it names; listings of the
// catalog, the metadata tables and names the word scan misses still work.
func TestLazyViews(t *testing.T) {
	l := newTestLake(t)
	for i := range 20 {
		n := fmt.Sprintf("t%02d", i)
		tab := nameTable(n)
		tab.Files = []lake.File{l.write(n+"/2020_1_1.csv", row(i, n, 1, false))}
		l.commit(tab)
	}
	weird := nameTable("t🚀") // DuckDB takes 🚀 as an identifier character, the word scan does not
	weird.Files = []lake.File{l.write("weird/2020_1_1.csv", row(99, "rocket", 1, false))}
	l.commit(weird)
	db := l.open()
	if len(db.views) != 0 || db.metaOn || db.catalogOn {
		t.Fatalf("Open created %d views (meta %v, catalog %v), want none", len(db.views), db.metaOn, db.catalogOn)
	}
	if got := query(t, db, "SELECT name FROM t03"); !slices.Equal(got, []string{"t03"}) {
		t.Errorf("t03: got %v", got)
	}
	if len(db.views) != 1 {
		t.Errorf("a query of one table created %d views, want 1", len(db.views))
	}
	if got := query(t, db, "SELECT name FROM t🚀"); !slices.Equal(got, []string{"rocket"}) {
		t.Errorf("t🚀: got %v", got)
	}
	if got := query(t, db, "SELECT count(*) FROM OptionsetMetadata"); !db.metaOn || len(got) != 1 {
		t.Errorf("metadata not filled: %v", got)
	}
	if got := query(t, db, "SELECT count(*) FROM sys.external_tables"); !slices.Equal(got, []string{fmt.Sprint(2*21 + len(metaTables))}) {
		t.Errorf("sys.external_tables: got %v", got)
	}
	for _, q := range []string{"SHOW TABLES", "SELECT count(*) FROM information_schema.tables", "SELECT count(*) FROM duckdb_views()"} {
		fresh := l.open()
		query(t, fresh, q)
		if len(fresh.views) != len(fresh.defs) {
			t.Errorf("%s: %d of %d views created", q, len(fresh.views), len(fresh.defs))
		}
	}
	if _, err := db.Query(t.Context(), "SELECT * FROM nosuch"); err == nil {
		t.Error("a missing table answered")
	}
	// A commit replaces the views created so far, no others.
	tab := nameTable("t03")
	tab.Files = []lake.File{l.write("t03/2021_1_1.csv", row(3, "t03 again", 1, false))}
	l.commit(tab)
	if got := query(t, db, "SELECT name FROM t03"); !slices.Equal(got, []string{"t03 again"}) {
		t.Errorf("after a commit: got %v", got)
	}
	if len(db.views) != 2 {
		t.Errorf("%d views after the commit, want 2", len(db.views))
	}
}

func TestNeedOf(t *testing.T) {
	tests := []struct {
		q       string
		words   []string
		all     bool
		listing bool
	}{
		{`SELECT * FROM public.orders`, []string{"select", "from", "public", "orders"}, false, false},
		{`SELECT * FROM "my schema"."line ""x"" items"`, []string{"my schema", `line "x" items`}, false, false},
		{`SELECT * FROM query_table('Orders')`, []string{"orders", "query_table"}, false, false},
		{`SHOW TABLES`, []string{"show", "tables"}, false, true},
		{`select * from duckdb_views()`, []string{"duckdb_views"}, true, false},
		{`select * from information_schema.tables`, []string{"information_schema"}, true, false},
	}
	for _, tt := range tests {
		n := needOf(tt.q)
		for _, w := range tt.words {
			if !n.words[w] {
				t.Errorf("%s: %q missing from %v", tt.q, w, n.words)
			}
		}
		if n.all != tt.all || n.listing != tt.listing {
			t.Errorf("%s: all %v listing %v, want %v %v", tt.q, n.all, n.listing, tt.all, tt.listing)
		}
	}
}

// FuzzNeedOf: a quoted name is always found, whatever it holds.
func FuzzNeedOf(f *testing.F) {
	for _, s := range []string{"orders", `a"b`, "x'y", "🚀", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return
		}
		n := needOf("SELECT * FROM " + quoteIdent(name) + " WHERE x = 'it''s'")
		if !n.words[strings.ToLower(name)] {
			t.Fatalf("%q not found in %v", name, n.words)
		}
	})
}
