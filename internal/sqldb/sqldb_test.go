package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
)

func TestRefreshFollowsSeq(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("account")
	tab.Files = []lake.File{l.write("account/2020_1_1.csv", row(1, "a", 1, false))}
	l.commit(tab)
	db := l.open()
	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"initial", func() {}, []string{"a"}},
		{"a change file", func() {
			next := *tab
			next.Changes = []lake.File{l.write("_lakelink/changes/account/1.csv", row(1, "a2", 2, false)+row(2, "b", 1, false))}
			l.commit(&next)
		}, []string{"a2", "b"}},
		{"compaction folds the changes in", func() {
			next := *tab
			next.Files = []lake.File{l.write("account/2020_1_2.csv", row(1, "a2", 2, false)+row(2, "b", 1, false))}
			l.commit(&next)
		}, []string{"a2", "b"}},
		{"a new table", func() {
			c := nameTable("contact")
			c.Files = []lake.File{l.write("contact/2020_1_1.csv", row(9, "c", 1, false))}
			l.commit(c)
		}, []string{"a2", "b", "c"}},
		{"a dropped table", func() { l.drop("contact") }, []string{"a2", "b"}},
	}
	for _, s := range steps {
		s.change()
		q := `SELECT name FROM account`
		if slices.Contains(s.want, "c") {
			q += ` UNION ALL SELECT name FROM contact`
		}
		if got := query(t, db, q+` ORDER BY 1`); !slices.Equal(got, s.want) {
			t.Errorf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	// An unchanged Seq rebuilds nothing.
	before := db.views[sqlName{mainSchema, "account"}]
	query(t, db, `SELECT 1`)
	if db.views[sqlName{mainSchema, "account"}] != before || db.seq != l.state.Seq {
		t.Error("views changed without a new commit")
	}
}

func TestLoadErrors(t *testing.T) {
	l := newTestLake(t)
	db := l.open()
	boom := errors.New("store unavailable")
	db.load = func(context.Context) (*lake.State, error) { return nil, boom }
	if _, err := db.Query(t.Context(), `SELECT 1`); !errors.Is(err, boom) {
		t.Errorf("got %v, want the load error wrapped", err)
	}
	if _, err := Open(t.Context(), l.st, db.load); !errors.Is(err, boom) {
		t.Errorf("Open: got %v, want the load error wrapped", err)
	}
}

func TestNameConflict(t *testing.T) {
	tests := []struct{ a, b string }{
		{"account", "account_partitioned"},
		{"Account", "account"},
		{"optionsetmetadata", ""},
	}
	for _, tt := range tests {
		t.Run(tt.a+"+"+tt.b, func(t *testing.T) {
			l := newTestLake(t)
			l.commit(nameTable(tt.a))
			if tt.b != "" {
				l.commit(nameTable(tt.b))
			}
			var ce *NameConflictError
			if _, err := Open(t.Context(), l.st, l.load); !errors.As(err, &ce) {
				t.Errorf("got %v, want a *NameConflictError", err)
			}
		})
	}
}

func TestOddTableNames(t *testing.T) {
	l := newTestLake(t)
	// Glob characters in file names must not match other tables' files:
	// "b*" next to "bob", "c?d" next to "cxd", "a[1]" next to "a1".
	names := []string{"order", "select", "my table", `we"ird`, "é-accent", "x'y", "b*", "bob", "c?d", "cxd", "a[1]", "a1", "e{x,y}", "ex"}
	for i, n := range names {
		tab := nameTable(n)
		tab.Files = []lake.File{l.write(n+"/2020_1_1.csv", row(i, n, 1, false))}
		tab.Changes = []lake.File{l.write("_lakelink/changes/"+n+"/1.csv", row(100+i, n+" change", 1, false))}
		l.commit(tab)
	}
	db := l.open()
	for _, n := range names {
		got := query(t, db, `SELECT name FROM `+quoteIdent(n)+` ORDER BY name`)
		if want := []string{n, n + " change"}; !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", n, got, want)
		}
		if got := query(t, db, `SELECT count(*) FROM `+quoteIdent(n+partitionedSuffix)); !slices.Equal(got, []string{"0"}) {
			t.Errorf("%s: got %q rows, want none", n+partitionedSuffix, got)
		}
	}
}

// TestConcurrentQueries runs queries from several goroutines while commits
// land. Each commit gives both tables n rows; a query must see both at the
// same commit, and never an older commit than one it already saw.
func TestConcurrentQueries(t *testing.T) {
	l := newTestLake(t)
	state := func(n int) []*lake.TableState {
		var out []*lake.TableState
		for _, name := range []string{"a", "b"} {
			tab := nameTable(name)
			var b strings.Builder
			for i := range n {
				b.WriteString(row(i, "x", 1, false))
			}
			tab.Files = []lake.File{l.write(fmt.Sprintf("%s/2020_1_%d.csv", name, n), b.String())}
			if n%2 == 0 {
				// Alternate between merge-on-read and plain views.
				tab.Changes = []lake.File{l.write(fmt.Sprintf("_lakelink/changes/%s/%d.csv", name, n), row(0, "y", 2, false))}
			}
			out = append(out, tab)
		}
		return out
	}
	l.commit(state(1)...)
	db := l.open()
	const commits, readers = 20, 3
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	done := make(chan struct{})
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := queryErr(db, `SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)`)
				if err != nil {
					errs <- err
					return
				}
				parts := strings.Split(got[0], "|")
				if parts[0] != parts[1] {
					errs <- fmt.Errorf("a query saw two commits: a has %s rows, b %s", parts[0], parts[1])
					return
				}
				n, _ := strconv.Atoi(parts[0])
				if n < last {
					errs <- fmt.Errorf("a query went back from commit %d to %d", last, n)
					return
				}
				last = n
			}
		}()
	}
	for n := 2; n <= commits; n++ {
		l.commit(state(n)...)
		// Between commits, at least one query refreshes.
		if got := query(t, db, `SELECT count(*) FROM a`); got[0] != strconv.Itoa(n) {
			t.Errorf("after commit %d: a has %s rows", n, got[0])
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func queryErr(db *DB, q string) ([]string, error) {
	rows, err := db.Query(context.Background(), q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows)
}

func TestMemoryBoundAndClose(t *testing.T) {
	l := newTestLake(t)
	db, err := Open(t.Context(), l.st, l.load)
	if err != nil {
		t.Fatal(err)
	}
	got := query(t, db, `SELECT current_setting('memory_limit'), current_setting('temp_directory') = ?`, db.spill)
	if !slices.Equal(got, []string{"366.2 MiB|true"}) {
		t.Errorf("settings: got %q, want a 384 MB limit spilling to %s", got, db.spill)
	}
	// A sort bigger than the memory limit (450 MB of text) spills instead
	// of failing. At 256 MB, DuckDB failed it now and then ("failed to pin
	// block").
	q := `SELECT max(n) FROM (SELECT row_number() OVER (ORDER BY s DESC) AS n FROM (SELECT repeat('x', 1000) || i AS s FROM range(450000) t(i)))`
	if got := query(t, db, q); !slices.Equal(got, []string{"450000"}) {
		t.Errorf("big sort: got %q", got)
	}
	spill := db.spill
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spill); !os.IsNotExist(err) {
		t.Errorf("spill directory %s left behind: %v", spill, err)
	}
}

// TestOpenContext: connections the pool opens after Open returns must not
// depend on Open's context.
func TestOpenContext(t *testing.T) {
	l := newTestLake(t)
	l.commit(nameTable("account"))
	ctx, cancel := context.WithCancel(t.Context())
	db, err := Open(ctx, l.st, l.load)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cancel()
	// Rows held open force the pool to open more connections.
	var open []*sql.Rows
	defer func() {
		for _, r := range open {
			r.Close()
		}
	}()
	for range 3 {
		rows, err := db.Query(t.Context(), `SELECT current_setting('TimeZone') FROM account`)
		if err != nil {
			t.Fatalf("query after Open's context ended: %v", err)
		}
		open = append(open, rows)
	}
}
