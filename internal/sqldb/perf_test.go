package sqldb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// bigTable writes an in-place table of rows records in files of perFile
// rows, plus changes change files of 1000 changes each (updates, inserts and
// deletes), and returns its state.
func bigTable(t testing.TB, l *testLake, rows, perFile, changes int) *lake.TableState {
	t.Helper()
	tab := &lake.TableState{
		Name:  "salesorder",
		Phase: lake.Completed,
		Columns: layout(
			lake.Column{Name: "name", Type: schema.String},
			lake.Column{Name: "amount", Type: schema.Decimal, Precision: 38, Scale: 2},
			lake.Column{Name: "quantity", Type: schema.Int64},
			lake.Column{Name: "closed", Type: schema.Boolean},
			lake.Column{Name: "due", Type: schema.DateTime},
			lake.Column{Name: "customerid", Type: schema.Guid},
		),
	}
	line := func(w *bufio.Writer, n int, version int64, deleted bool) {
		if deleted {
			fmt.Fprintf(w, "%s,\"4/14/2026 8:21:50 PM\",\"4/14/2026 8:21:50 PM\",,,,,,,%d,,,True\n", id(n), version)
			return
		}
		fmt.Fprintf(w, "%s,\"4/14/2026 8:21:50 PM\",\"4/14/2026 8:21:50 PM\",\"order %d, \"\"rush\"\"\",%d.%02d,%d,%s,\"2026-05-01T10:00:00.0000000Z\",%s,%d,\"2020-01-01T00:15:00.0000000Z\",\"2020-01-01T00:15:00.0000000Z\",\n",
			id(n), n, n, n%100, n%7, []string{"False", "True"}[n%2], id(n%1000), version)
	}
	write := func(name string, fill func(w *bufio.Writer)) lake.File {
		w, err := l.st.Create(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		cw := &countingWriter{w: w}
		bw := bufio.NewWriterSize(cw, 1<<20)
		fill(bw)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// Bytes as the lake records it: the cache's live set is keyed by it.
		return lake.File{Path: name, Bytes: cw.n}
	}
	for start := 0; start < rows; start += perFile {
		tab.Files = append(tab.Files, write(fmt.Sprintf("salesorder/2020_1_%d.csv", start/perFile), func(w *bufio.Writer) {
			for n := start; n < min(start+perFile, rows); n++ {
				line(w, n, 1, false)
			}
		}))
	}
	for c := range changes {
		tab.Changes = append(tab.Changes, write(fmt.Sprintf("_lakelink/changes/salesorder/%d.csv", c), func(w *bufio.Writer) {
			for i := range 1000 {
				n := (c*1000 + i) * 97 % (rows + rows/10) // mostly updates, some inserts
				line(w, n, int64(2+c), i%10 == 0)
			}
		}))
	}
	return tab
}

// TestLargeTable measures queries on a 200k-row in-place table with three
// change files and logs the numbers (BenchmarkLive has 1M rows). The machine is shared, so bounds are
// relative to a plain scan of the same files in the same run: merging the
// changes and the decimal fast path must stay cheap next to parsing.
func TestLargeTable(t *testing.T) {
	l := newTestLake(t)
	start := time.Now()
	tab := bigTable(t, l, 200_000, 100_000, 3)
	t.Logf("wrote 200k rows in %v", time.Since(start))
	// The snapshot holds the same partition files: the plain scan to compare with.
	tab.Snapshots = []lake.Snapshot{{Files: tab.Files}}
	l.commit(tab)
	start = time.Now()
	db := l.open()
	t.Logf("open + views: %v", time.Since(start))
	timed := func(q string) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			got := query(t, db, q)
			best = min(best, time.Since(start))
			t.Logf("%v: %s -> %.80q", time.Since(start), q, got)
		}
		return best
	}
	// Loose enough for a loaded machine, tight enough to catch a 10x
	// regression such as the 128-bit decimal parsing.
	const slack = 300 * time.Millisecond
	for _, q := range []string{
		`SELECT count(*) FROM %s`,
		`SELECT count(*), sum(amount), max(due), max(SinkModifiedOn) FROM %s`,
		`SELECT * FROM %s WHERE Id = '00000000-0000-0000-0000-000000000194'`,
	} {
		plain := timed(fmt.Sprintf(q, "salesorder_partitioned"))
		live := timed(fmt.Sprintf(q, "salesorder"))
		if live > 4*plain+slack {
			t.Errorf("merge-on-read costs too much: %v against %v for a plain scan of %s", live, plain, q)
		}
	}
	ints := timed(`SELECT sum(quantity) FROM salesorder_partitioned`)
	decimals := timed(`SELECT sum(amount) FROM salesorder_partitioned`)
	if decimals > 4*ints+slack {
		t.Errorf("DECIMAL(38,2) parsing is slow: %v against %v for BIGINT", decimals, ints)
	}
	// A one-row change: the refresh is a few DDL statements, no scan.
	next := *tab
	next.Changes = append(next.Changes, l.write("_lakelink/changes/salesorder/x.csv", row(5, "", 99, true)))
	l.commit(&next)
	start = time.Now()
	if err := db.refresh(t.Context(), need{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("refresh after a one-row commit: %v", time.Since(start))
}

// BenchmarkLive queries the live and snapshot views of a 1M-row table with
// three change files (go test -run XXX -bench Live), reading the CSV files
// and then the warm Parquet cache.
func BenchmarkLive(b *testing.B) {
	l := newTestLake(b)
	tab := bigTable(b, l, 1_000_000, 500_000, 3)
	tab.Snapshots = []lake.Snapshot{{Files: tab.Files}}
	l.commit(tab)
	for _, mode := range []string{"csv", "parquet"} {
		var db *DB
		if mode == "csv" {
			db = l.open()
		} else {
			start := time.Now()
			db = l.openCached()
			b.Logf("converting 1M rows to the Parquet cache: %v", time.Since(start))
		}
		for _, q := range []string{
			`SELECT count(*) FROM salesorder`,
			`SELECT count(*), sum(amount), max(due) FROM salesorder`,
			`SELECT * FROM salesorder WHERE Id = '00000000-0000-0000-0000-000000000194'`,
			`SELECT count(*) FROM salesorder_partitioned`,
			`SELECT * FROM salesorder_partitioned WHERE Id = '00000000-0000-0000-0000-000000000194'`,
		} {
			b.Run(mode+"/"+q, func(b *testing.B) {
				for b.Loop() {
					query(b, db, q)
				}
			})
		}
		db.Close()
	}
}

// BenchmarkRefresh measures a refresh after a one-row commit on a lake of
// 300 tables, without and with the (warm) Parquet cache.
func BenchmarkRefresh(b *testing.B) {
	l := newTestLake(b)
	var tables []*lake.TableState
	for i := range 300 {
		tab := nameTable(fmt.Sprintf("table%03d", i))
		tab.Files = []lake.File{l.write(fmt.Sprintf("table%03d/2020_1_1.csv", i), row(1, "a", 1, false))}
		tables = append(tables, tab)
	}
	l.commit(tables...)
	for _, mode := range []string{"csv", "parquet"} {
		b.Run(mode, func(b *testing.B) {
			start := time.Now()
			var db *DB
			if mode == "csv" {
				db = l.open()
			} else {
				db = l.openCached()
			}
			b.Logf("open with 300 tables: %v", time.Since(start))
			tab := *tables[0]
			for b.Loop() {
				tab.Changes = []lake.File{l.write("_lakelink/changes/table000/1.csv", row(1, "b", 2, false))}
				next := tab
				l.commit(&next)
				if err := db.refresh(context.Background(), need{all: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
