package lake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// ordersSchema is the table of the postgres-initial benchmark scenario
// (internal/bench): bigint key, timestamptz, text, numeric(12,2), smallint,
// boolean, varchar, without a partition column.
func ordersSchema() *schema.Table {
	return &schema.Table{
		Name: "orders",
		Key:  []string{"id"},
		Columns: []schema.Column{
			{Name: "id", Type: schema.Int64, SourceType: "bigint"},
			{Name: "created_at", Type: schema.DateTimeOffset, SourceType: "timestamptz"},
			{Name: "customer", Type: schema.String, SourceType: "text"},
			{Name: "amount", Type: schema.Decimal, Precision: 12, Scale: 2, SourceType: "numeric"},
			{Name: "status", Type: schema.Int64, SourceType: "smallint"},
			{Name: "paid", Type: schema.Boolean, SourceType: "boolean"},
			{Name: "note", Type: schema.String, MaxLength: 200, SourceType: "character varying"},
		},
	}
}

// ordersCols names the values of orders changes, shared as a source shares
// the Columns of one schema.
var ordersCols = []string{"id", "created_at", "customer", "amount", "status", "paid", "note"}

// orders returns n changes of ordersSchema with the values the scenario's
// generator gives, typed as the Postgres source delivers them.
func orders(first, n int) []source.Change {
	chs := make([]source.Change, n)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for k := range chs {
		i := first + k
		var note any
		if i%10 != 0 {
			note = fmt.Sprintf("note \"%d\"", i)
		}
		chs[k] = source.Change{Table: "orders", ID: strconv.Itoa(i), Version: 1, Columns: ordersCols, Values: []any{
			int64(i), base.Add(time.Duration(i) * 17 * time.Second),
			fmt.Sprintf("customer %d", i%100000), fmt.Sprintf("%d.%02d", i%100000/100, i%100),
			int64(i % 5), i%3 == 0, note,
		}}
	}
	return chs
}

// BenchmarkInitialCopy10k commits 10 000-row initial-copy batches of the
// postgres-initial scenario's table, one commit per batch, as the sync
// engine does during an initial copy: into a local folder (with its fsyncs,
// which make it noisy on a shared disk) and into a store that discards data
// objects, which measures the lake's own work.
func BenchmarkInitialCopy10k(b *testing.B) {
	for _, bc := range []struct {
		name  string
		store func(b *testing.B) store.Store
	}{
		{"local", func(b *testing.B) store.Store {
			st, err := local.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"discard", func(*testing.B) store.Store { return &discardStore{records: map[string][]byte{}} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			l, err := Open(ctx, bc.store(b), Options{Link: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Define: define(ordersSchema(), TableOptions{})}}}); err != nil {
				b.Fatal(err)
			}
			const batch = 10_000
			chs := orders(1, batch)
			b.ReportAllocs()
			b.ReportMetric(batch, "rows/op")
			cpu0 := cpuTime(b)
			n := 0
			for ; b.Loop(); n++ {
				if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Changes: chs, Cursor: strconv.Itoa(n)}}}); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time (all threads, GC included) is steadier than wall
			// time on a machine shared with other work.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}

// cpuTime returns the user plus system CPU time of the process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardStore keeps what PutIfAbsent writes (commit records, checkpoints)
// and discards the data objects Create writes.
type discardStore struct {
	mu      sync.Mutex
	records map[string][]byte
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) Close() error                { return nil }
func (discardWriter) Abort() error                { return nil }

func (d *discardStore) Create(context.Context, string) (store.Writer, error) {
	return discardWriter{}, nil
}

func (d *discardStore) PutIfAbsent(_ context.Context, name string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.records[name]; ok {
		return fmt.Errorf("%s: %w", name, store.ErrExist)
	}
	d.records[name] = bytes.Clone(data)
	return nil
}

// Copy copies a record; a copy of a data object is discarded like the
// object.
func (d *discardStore) Copy(_ context.Context, from, to string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if data, ok := d.records[from]; ok {
		d.records[to] = data
	} else {
		delete(d.records, to)
	}
	return nil
}

func (d *discardStore) Open(_ context.Context, name string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, ok := d.records[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, store.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (d *discardStore) List(_ context.Context, prefix string) ([]store.Object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []store.Object
	for name, data := range d.records {
		if strings.HasPrefix(name, prefix) {
			out = append(out, store.Object{Name: name, Size: int64(len(data))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *discardStore) Delete(_ context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.records, name)
	return nil
}

func (d *discardStore) Location(name string) string { return name }

// BenchmarkSnapshot takes the first snapshot of a 1M-row orders table (100
// files of 10 000 rows, ~140 MB), as Maintain does when the initial copy
// of the postgres-initial scenario completes.
func BenchmarkSnapshot(b *testing.B) {
	st, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	l, err := Open(ctx, st, Options{Link: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Define: define(ordersSchema(), TableOptions{})}}}); err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	for i := range 100 {
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Changes: orders(i*batch+1, batch)}}}); err != nil {
			b.Fatal(err)
		}
	}
	ts := l.State().Tables["orders"]
	var size int64
	for _, f := range ts.Files {
		size += f.Bytes
	}
	b.SetBytes(size)
	for b.Loop() {
		snap, err := csvOf(l).takeSnapshot(ctx, ts, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, f := range snap.Files {
			if err := st.Delete(ctx, f.Path); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkEncode10k encodes a 10 000-row initial-copy batch of the
// postgres-initial scenario's table (7 columns) into CSV, without the rest
// of a commit: the lake's per-row CPU cost.
func BenchmarkEncode10k(b *testing.B) {
	cols, err := newLayout(ordersSchema())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	ts := &TableState{Name: "orders", Source: ordersSchema(), Columns: cols, Phase: InProgress, Options: TableOptions{Granularity: Year}}
	const batch = 10_000
	chs := orders(1, batch)
	b.ReportAllocs()
	b.ReportMetric(batch, "rows/op")
	for b.Loop() {
		enc, err := encodeChanges(ts, chs, now)
		if err != nil {
			b.Fatal(err)
		}
		enc.recycle()
	}
}

// BenchmarkOneRowCommit commits one one-row change of one table of a lake
// of 10 and of 2000 tables, records kept in memory and data discarded: the
// CPU cost of a commit, which should not grow with the table count (#16).
func BenchmarkOneRowCommit(b *testing.B) {
	for _, n := range []int{10, 2000} {
		b.Run(fmt.Sprintf("tables=%d", n), func(b *testing.B) {
			l, err := Open(b.Context(), &discardStore{records: map[string][]byte{}}, Options{Link: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			var tx Tx
			for i := range n {
				s := accountSchema()
				s.Name = fmt.Sprintf("t%04d", i)
				ch := account(i, 1, "n", t0)
				ch.Table = s.Name
				tx.Tables = append(tx.Tables, TableTx{Name: s.Name, Define: &Definition{Source: s}, Changes: []source.Change{ch}, Phase: Completed})
			}
			if _, err := l.Commit(b.Context(), tx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			// The same ten tables take the changes at both sizes: their
			// change files accumulate alike, so what differs is the
			// table count.
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprintf("t%04d", i%10)
				ch := account(i%10, int64(i+2), "m", t0)
				ch.Table = name
				if _, err := l.Commit(b.Context(), Tx{Tables: []TableTx{{Name: name, Changes: []source.Change{ch}, Cursor: fmt.Sprint(i), CaughtUp: true}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
