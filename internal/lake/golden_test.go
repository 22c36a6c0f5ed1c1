package lake

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

var update = flag.Bool("update", false, "rewrite the golden lakes under testdata/golden")

// contactSchema is an append-only table without createdon.
func contactSchema() *schema.Table {
	return &schema.Table{
		Name: "contact",
		Key:  []string{"contactid"},
		Columns: []schema.Column{
			{Name: "contactid", Type: schema.Guid},
			{Name: "fullname", Type: schema.String},
			{Name: "birthdate", Type: schema.DateTimeOffset},
			{Name: "score", Type: schema.Double},
			{Name: "donotcall", Type: schema.Boolean},
			{Name: "notes", Type: schema.JSON},
		},
		AppendOnly: true,
	}
}

var contactCols = []string{"contactid", "fullname", "birthdate", "score", "donotcall", "notes"}

func contact(n int, version int64, name string) source.Change {
	return source.Change{Table: "contact", ID: guid(n), Version: version, Columns: contactCols, Values: []any{
		guid(n), name, time.Date(1980, 2, 29, 23, 30, 0, 0, time.FixedZone("", 3600)), 0.25, n%2 == 0, `{"tags":["a","b"]}`,
	}}
}

// pinSession makes object names deterministic for the golden lakes.
func pinSession(t *testing.T) {
	old, workers := newSession, maintainWorkers
	newSession = func() string { return "5e5510" }
	maintainWorkers = 1
	t.Cleanup(func() { newSession, maintainWorkers = old, workers })
}

// TestGoldenLake runs a small deterministic sync and compares the whole
// lake folder, file by file, with testdata/golden/<name>. Run with -update
// to regenerate after an intended format change, and review the diff.
func TestGoldenLake(t *testing.T) {
	pinSession(t)
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "golden", Now: c.now, Grace: time.Minute, MaxFileRows: 3, SnapshotsToKeep: 2, CompactAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	y23 := time.Date(2023, 12, 31, 23, 59, 59, 0, time.UTC)
	y24 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	odd := account(5, 1, "quote \" comma , newline \n emoji 😀", y24)
	setValue(&odd, "revenue", nil)
	setValue(&odd, "parentaccountid", guid(1))
	mustCommit(t, l, Tx{Tables: []TableTx{
		{Name: "account", Define: define(accountSchema(), TableOptions{}), Cursor: "copy-1",
			Changes: []source.Change{account(1, 1, "one", y23), account(2, 1, "two", y23), account(3, 1, "three", y24), account(4, 1, "four", y23), odd}},
		{Name: "contact", Define: define(contactSchema(), TableOptions{Granularity: Month}), Changes: []source.Change{contact(1, 1, "Ann"), contact(2, 1, "Bob")}},
	}})
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{
		{Name: "account", Phase: Completed, Cursor: "delta-1", CaughtUp: true},
		{Name: "contact", Phase: Completed, Cursor: "delta-1", CaughtUp: true},
	}})
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{
		{Name: "account", Cursor: "delta-2", CaughtUp: true, Changes: []source.Change{account(1, 2, "one v2", y23), del("account", 2, 2), account(6, 1, "six", y24)}},
		{Name: "contact", Cursor: "delta-2", Changes: []source.Change{contact(1, 2, "Ann v2"), del("contact", 2, 2)}},
	}})
	c.add(2 * time.Minute)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Schema change: telephone1 appears, statecode goes.
	evolved := accountSchema()
	evolved.Columns = append(evolved.Columns, schema.Column{Name: "telephone1", Type: schema.String, MaxLength: 50})
	evolved.Columns = append(evolved.Columns[:3], evolved.Columns[4:]...)
	withPhone := account(3, 2, "three v2", y24)
	dropValue(&withPhone, "statecode")
	setValue(&withPhone, "telephone1", "+1 555 0100")
	c.add(time.Second)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(evolved, TableOptions{}), Cursor: "delta-3", Changes: []source.Change{withPhone}}}})
	c.add(2 * time.Hour)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, st, l, "lake")
}

// TestGoldenIncremental writes incremental-update folders over three
// intervals.
func TestGoldenIncremental(t *testing.T) {
	pinSession(t)
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "golden", Now: c.now, Grace: time.Minute, Incremental: Incremental{Enabled: true, Interval: 15 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	y := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "one", y), account(2, 1, "two", y)}, Phase: Completed}}})
	c.add(20 * time.Minute)
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(1, 2, "one v2", y), del("account", 2, 2)}}}})
	c.add(15 * time.Minute)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if !ts.Options.AppendOnly {
		t.Fatal("incremental mode must force append-only")
	}
	compareGolden(t, st, l, "incremental")
}

func compareGolden(t *testing.T, st *local.Store, l *Lake, name string) {
	t.Helper()
	readBack(t, st, l.State())
	dir := filepath.Join("testdata", "golden", name)
	got := map[string][]byte{}
	err := filepath.WalkDir(st.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(st.Root(), p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// Locations in model.json are absolute paths of the temporary lake.
		got[filepath.ToSlash(rel)] = []byte(strings.ReplaceAll(string(data), st.Root(), "<lake>"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for rel, data := range got {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		want[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatalf("reading %s (run go test -run TestGolden -update to create it): %v", dir, err)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	for n := range want {
		if _, ok := got[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g, okg := got[n]
		w, okw := want[n]
		switch {
		case !okw:
			t.Errorf("%s: unexpected file", n)
		case !okg:
			t.Errorf("%s: missing", n)
		case string(g) != string(w):
			t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", n, g, w)
		}
	}
}
