package lake

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store/local"
)

// BenchmarkCompactBulk folds an UPDATE of every row of a 1M-row orders
// table (the postgres-bulk-update scenario of internal/bench) into its
// partition files: 100 files of 10 000 rows as the initial copy writes
// them, and the million updates in 50 change files of 20 000 rows, the
// parts the Postgres source cuts a huge transaction into. It runs under
// the soft memory limit lakelink sets (cmd/lakelink) and reports, next to
// time and CPU, the peak heap during the compaction: the live heap the
// collector found (peak-live) and the heap objects, garbage not yet
// collected included (peak-heap), which is what the process's RSS follows.
func BenchmarkCompactBulk(b *testing.B) {
	st, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	l, err := Open(ctx, st, Options{Link: "bench", SnapshotsToKeep: -1, CompactAge: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Define: define(ordersSchema(), TableOptions{})}}}); err != nil {
		b.Fatal(err)
	}
	const rows, batch, part = 1_000_000, 10_000, 20_000
	for i := range rows / batch {
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Changes: orders(i*batch+1, batch)}}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Phase: Completed}}}); err != nil {
		b.Fatal(err)
	}
	for i := range rows / part {
		chs := orders(i*part+1, part)
		for k := range chs {
			chs[k].Version = 2
			setValue(&chs[k], "status", int64(9))
		}
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "orders", Changes: chs, Cursor: strconv.Itoa(i)}}}); err != nil {
			b.Fatal(err)
		}
	}
	ts := l.State().Tables["orders"]
	if len(ts.Files) != rows/batch || len(ts.Changes) != rows/part {
		b.Fatalf("%d files, %d change files", len(ts.Files), len(ts.Changes))
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(384 << 20))
	b.ReportAllocs()
	var peak heapPeak
	cpu0 := cpuTime(b)
	n := 0
	for ; b.Loop(); n++ {
		runtime.GC()
		stop := sampleHeap(&peak)
		c, err := csvOf(l).compact(ctx, ts, math.MaxInt64)
		stop()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var out int64
		for _, f := range c.added {
			out += f.Rows
			if err := st.Delete(ctx, f.Path); err != nil {
				b.Fatal(err)
			}
		}
		if out != rows || len(c.removed) != rows/batch || len(c.folded) != rows/part {
			b.Fatalf("compaction wrote %d rows, removed %d files, folded %d", out, len(c.removed), len(c.folded))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
	b.ReportMetric(float64(peak.live)/(1<<20), "peak-live-MiB")
	b.ReportMetric(float64(peak.objects)/(1<<20), "peak-heap-MiB")
}

// heapPeak is the largest heap sizes sampleHeap saw.
type heapPeak struct{ live, objects uint64 }

// sampleHeap records the largest heap sizes seen until stop is called,
// sampling every millisecond: runtime/metrics reads them without stopping
// the world.
func sampleHeap(peak *heapPeak) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak.live = max(peak.live, s[0].Value.Uint64())
			peak.objects = max(peak.objects, s[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
