package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

// TestPostgresSQLNames queries a Postgres link's tables the way the source
// names them: schema-qualified (public.orders), bare where that is
// unambiguous (items), and by the lake name as one identifier
// ("public.orders", the name before schemas); status prints the same names.
func TestPostgresSQLNames(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.CreateDB(t, "names")
	c.Exec(t, "names",
		`CREATE SCHEMA sales`,
		`CREATE TABLE public.orders (id integer PRIMARY KEY, note text)`,
		`CREATE TABLE sales.orders (id integer PRIMARY KEY, note text)`,
		`CREATE TABLE public.items (id integer PRIMARY KEY, note text)`,
		`INSERT INTO public.orders VALUES (1, 'public order'), (2, 'public order')`,
		`INSERT INTO sales.orders VALUES (1, 'sales order')`,
		`INSERT INTO public.items VALUES (1, 'item'), (2, 'item'), (3, 'item')`,
	)
	profile := filepath.Join(t.TempDir(), "link.yaml")
	pgTablesProfile(t, profile, dsn, "public.orders", "sales.orders", "public.items")
	run(t, 0, "sync", "-c", profile, "--once")

	for q, want := range map[string]string{
		"SELECT count(*) FROM public.orders":                           "2",
		"SELECT count(*) FROM sales.orders":                            "1",
		`SELECT count(*) FROM "public.orders"`:                         "2",
		"SELECT count(*) FROM items":                                   "3",
		"SELECT count(*) FROM public.items_partitioned":                "3",
		"SELECT count(*) FROM items i JOIN public.orders o USING (id)": "2",
	} {
		if got := queryCSV(t, profile, q); len(got) != 1 || got[0][0] != want {
			t.Errorf("%s: got %v, want %s", q, got, want)
		}
	}
	// orders is in two schemas: the bare name is not guessed.
	out, err := exec.Command(binary, "query", "-c", profile, "SELECT count(*) FROM orders").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "orders") {
		t.Errorf("the ambiguous bare name orders answered (err %v):\n%s", err, out)
	}

	var names []string
	for _, tb := range readStatus(t, profile).Tables {
		names = append(names, tb.Name)
	}
	slices.Sort(names)
	if want := []string{"public.items", "public.orders", "sales.orders"}; !slices.Equal(names, want) {
		t.Errorf("status names the tables %v, want %v", names, want)
	}
	if text := run(t, 0, "status", "-c", profile); !strings.Contains(text, "public.orders") || !strings.Contains(text, "sales.orders") {
		t.Errorf("status does not print the schema-qualified names:\n%s", text)
	}
}
