// Package progress shows the initial copies of a sync: one live bar per table
// in a terminal, or a line per table every few seconds in a log.
package progress

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Bars implements sync.Progress.
type Bars struct {
	w   io.Writer
	p   *mpb.Progress // nil when w is not a terminal
	mu  sync.Mutex
	tab map[string]*entry
	// stop ends the periodic lines of a non-terminal writer.
	stop chan struct{}
	done chan struct{}
}

type entry struct {
	bar   *mpb.Bar
	rows  int64
	start time.Time
	end   time.Time
}

// logEvery is how often a non-terminal writer gets a progress line.
const logEvery = 5 * time.Second

// New returns progress output on w: bars when w is a terminal.
func New(w io.Writer) *Bars {
	b := &Bars{w: w, tab: map[string]*entry{}, stop: make(chan struct{}), done: make(chan struct{})}
	if isTerminal(w) {
		b.p = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(150*time.Millisecond))
		close(b.done)
		return b
	}
	go b.logLoop()
	return b
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Copying implements sync.Progress.
func (b *Bars) Copying(table string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := &entry{start: time.Now()}
	b.tab[table] = e
	if b.p != nil {
		e.bar = b.p.AddSpinner(0,
			mpb.PrependDecorators(decor.Name(table, decor.WCSyncSpaceR), decor.CurrentNoUnit("%d rows", decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.AverageSpeed(0, "%.0f rows/s", decor.WCSyncSpace), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)),
			mpb.BarFillerOnComplete("done"),
		)
	}
}

// Copied implements sync.Progress.
func (b *Bars) Copied(table string, rows int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.tab[table]; ok {
		e.rows += int64(rows)
		if e.bar != nil {
			e.bar.IncrBy(rows)
		}
	}
}

// CopyDone implements sync.Progress.
func (b *Bars) CopyDone(table string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.tab[table]
	if !ok {
		return
	}
	e.end = time.Now()
	if e.bar != nil {
		if err != nil {
			e.bar.Abort(false)
		} else {
			e.bar.SetTotal(-1, true)
		}
		return
	}
	if err != nil {
		fmt.Fprintf(b.w, "%s: initial sync failed after %d rows: %v\n", table, e.rows, err)
		return
	}
	fmt.Fprintf(b.w, "%s: initial sync completed: %d rows in %s\n", table, e.rows, e.end.Sub(e.start).Round(time.Millisecond))
}

func (b *Bars) logLoop() {
	defer close(b.done)
	tick := time.NewTicker(logEvery)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		names := make([]string, 0, len(b.tab))
		for n, e := range b.tab {
			if e.end.IsZero() {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			e := b.tab[n]
			el := time.Since(e.start)
			fmt.Fprintf(b.w, "%s: %d rows copied (%.0f rows/s)\n", n, e.rows, float64(e.rows)/el.Seconds())
		}
		b.mu.Unlock()
	}
}

// Close stops the output; bars still running are left as they are.
func (b *Bars) Close() {
	if b.p != nil {
		b.mu.Lock()
		for _, e := range b.tab {
			if e.end.IsZero() && e.bar != nil {
				e.bar.Abort(false)
			}
		}
		b.mu.Unlock()
		b.p.Wait()
		return
	}
	close(b.stop)
	<-b.done
}
