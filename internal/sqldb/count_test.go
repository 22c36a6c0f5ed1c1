package sqldb

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
)

// TestCountRows: CountRows returns select count(*) of exactly the tables
// whose view merges change files (inserts, updates of existing and of new
// rows, deletes of old and new rows, stale changes), also for a
// schema-qualified name, and leaves out the tables whose Rows is exact
// (no changes, append-only).
func TestCountRows(t *testing.T) {
	tables := []struct {
		name       string
		appendOnly bool
		files      []string
		changes    []string
		want       int64 // -1: not counted
	}{
		{name: "idle", files: []string{row(1, "a", 1, false) + row(2, "b", 1, false)}, want: -1},
		{name: "updates", files: []string{row(1, "a", 1, false) + row(2, "b", 1, false)},
			changes: []string{row(1, "a2", 2, false) + row(2, "b2", 2, false), row(1, "a3", 3, false)}, want: 2},
		{name: "mixed", files: []string{row(1, "a", 1, false) + row(2, "b", 1, false), row(3, "c", 1, false)},
			changes: []string{row(4, "d", 5, false) + row(5, "e", 5, false) + row(2, "b2", 5, false), row(5, "", 6, true) + row(4, "d2", 6, false) + row(1, "", 6, true)}, want: 3},
		{name: "stale", files: []string{row(1, "new", 7, false)}, changes: []string{row(1, "", 2, true)}, want: 1},
		{name: "public.orders", files: []string{row(1, "a", 1, false)}, changes: []string{row(2, "b", 2, false)}, want: 2},
		{name: "log", appendOnly: true, files: []string{row(1, "a", 1, false)}, changes: []string{row(1, "a2", 2, false)}, want: -1},
	}
	l := newTestLake(t)
	want := map[string]int64{}
	for _, tt := range tables {
		tab := nameTable(tt.name)
		tab.Options.AppendOnly = tt.appendOnly
		for i, f := range tt.files {
			tab.Files = append(tab.Files, l.write(fmt.Sprintf("%s/%d_1_%d.csv", tt.name, 2020+i, i), f))
		}
		for i, f := range tt.changes {
			tab.Changes = append(tab.Changes, l.write(fmt.Sprintf("_lakelink/changes/%s/%04d.csv", tt.name, i), f))
		}
		l.commit(tab)
		if tt.want >= 0 {
			want[tt.name] = tt.want
		}
	}
	state, _ := l.load(context.Background())
	got, err := CountRows(context.Background(), l.st, state)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("CountRows: got %v, want %v", got, want)
	}
	db := l.open()
	for name, n := range got {
		if c := query(t, db, "SELECT count(*) FROM "+name); len(c) != 1 || c[0] != strconv.FormatInt(n, 10) {
			t.Errorf("%s: CountRows %d, select count(*) %q", name, n, c)
		}
	}

	// A lake without pending changes counts nothing (and opens no database).
	idle := newTestLake(t)
	tab := nameTable("idle")
	tab.Files = []lake.File{idle.write("idle/2020_1_0.csv", row(1, "a", 1, false))}
	idle.commit(tab)
	state, _ = idle.load(context.Background())
	if got, err := CountRows(context.Background(), idle.st, state); err != nil || got != nil {
		t.Errorf("a lake without pending changes: got %v, %v; want nothing", got, err)
	}
}

// BenchmarkCountRows is what lakelink status pays for ROWS on a lake of
// 2000 tables, one of them (rows records, 3000 pending changes) with
// uncompacted changes: go test -run XXX -bench CountRows.
func BenchmarkCountRows(b *testing.B) {
	for _, rows := range []int{100_000, 1_000_000} {
		l := newTestLake(b)
		for i := range 1999 {
			tab := nameTable(fmt.Sprintf("table%04d", i))
			tab.Files = []lake.File{l.write(fmt.Sprintf("table%04d/2020_1_0.csv", i), row(1, "a", 1, false))}
			l.commit(tab)
		}
		l.commit(bigTable(b, l, rows, 500_000, 3))
		state, _ := l.load(context.Background())
		b.Run(fmt.Sprintf("%d rows", rows), func(b *testing.B) {
			for b.Loop() {
				got, err := CountRows(context.Background(), l.st, state)
				if err != nil || len(got) != 1 {
					b.Fatal(got, err)
				}
			}
		})
	}
}
