package dataverse

import (
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// requestCount counts the fake's requests so far.
func (f *fake) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// dataReads counts the fake's reads of the entity set so far.
func (f *fake) dataReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.prefers)
}

// TestAdaptivePolling: an idle table backs off toward MaxPollInterval; a
// busy one is read every PollInterval.
func TestAdaptivePolling(t *testing.T) {
	f, srv := newFake(t)
	f.upsert(1, "x")
	s := open(t, srv.URL, func(c *Config) { c.PollInterval = 10 * time.Millisecond; c.MaxPollInterval = 160 * time.Millisecond })
	bs := copyAll(t, s, "account", "")
	cur := map[string]string{"account": bs[0].Cursors["account"]}

	run := func(d time.Duration, busy bool) int {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var stop atomic.Bool
		defer stop.Store(true)
		if busy {
			go func() {
				for i := 0; !stop.Load(); i++ {
					f.upsert(2, strings.Repeat("y", i%5))
					time.Sleep(3 * time.Millisecond)
				}
			}()
		}
		before := f.requestCount()
		_ = s.Stream(ctx, cur, func(context.Context, source.Batch) error { return nil })
		return f.requestCount() - before
	}
	// Idle for 1 s: 10+20+40+80 ms, then every 160 ms: about 10 reads,
	// where a fixed 10 ms interval would make 100.
	n := run(time.Second, false)
	t.Logf("idle: %d reads in 1 s", n)
	if n > 20 {
		t.Errorf("idle table read %d times in 1 s, want it to back off (<= 20)", n)
	}
	// Busy for 500 ms: every 10 ms, so well above what backing off allows.
	n = run(500*time.Millisecond, true)
	t.Logf("busy: %d reads in 500 ms", n)
	if n < 15 {
		t.Errorf("busy table read %d times in 500 ms, want >= 15", n)
	}
}

// TestRequestBudget: however many tables and however short the intervals,
// the change stream stays inside its share of RequestsPerSecond (half),
// leaving the rest to copies and describes.
func TestRequestBudget(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{Scale: 3, Seed: 1})
	s := open(t, url, func(c *Config) {
		c.RequestsPerSecond = 20
		c.PollInterval, c.MaxPollInterval = time.Millisecond, time.Millisecond
	})
	cursors := map[string]string{}
	for _, table := range []string{"account", "contact", "lead", "opportunity", "systemuser", "accountleads"} {
		_, cur := copyTable(t, s, table)
		cursors[table] = cur
	}
	time.Sleep(time.Second) // refill the bucket the copies drained
	before := e.Stats().Requests
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_ = s.Stream(ctx, cursors, func(context.Context, source.Batch) error { return nil })
	n := e.Stats().Requests - before
	t.Logf("%d requests in 1.5 s", n)
	// The poll bucket (Concurrency, 4) plus 1.5 s at half of 20/s.
	if n > 4+15+2 || n < 12 {
		t.Errorf("6 tables polled every 1 ms made %d requests in 1.5 s, want about 19 (half the budget of 20/s)", n)
	}
}

// TestSchedule: of the tables due, the one whose deadline (due + interval)
// is first is read first, so a table that just changed is not queued
// behind idle tables when the poll budget cannot keep up.
func TestSchedule(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	idle := func(name string, due time.Duration) *tableState {
		return &tableState{name: name, due: at(due), interval: 30 * time.Second}
	}
	tests := []struct {
		name   string
		tables []*tableState
		want   []string // the order of reads due at now
		wake   time.Time
	}{
		{"changed table before long-overdue idle ones", []*tableState{
			idle("idle1", -5*time.Second), idle("idle2", -3*time.Second),
			{name: "hot", due: at(-100 * time.Millisecond), interval: time.Second},
		}, []string{"hot", "idle1", "idle2"}, time.Time{}},
		{"an idle table overdue past its interval goes first", []*tableState{
			{name: "hot", due: at(-100 * time.Millisecond), interval: time.Second},
			idle("idle1", -40*time.Second),
		}, []string{"idle1", "hot"}, time.Time{}},
		{"a table with more pages goes first", []*tableState{
			{name: "hot", due: at(-time.Second), interval: time.Second},
			{name: "paging", due: now, interval: 30 * time.Second, paging: true},
		}, []string{"paging", "hot"}, time.Time{}},
		{"none due: wake at the first due", []*tableState{idle("a", 2*time.Second), idle("b", time.Second)}, nil, at(time.Second)},
		{"no table", nil, nil, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, tb := range tt.tables {
				tb.order = i
			}
			s := newSchedule(tt.tables)
			var got []string
			for {
				tb, wake := s.peek(now)
				if tb == nil {
					if !wake.Equal(tt.wake) {
						t.Errorf("wake %v, want %v", wake, tt.wake)
					}
					break
				}
				s.take()
				got = append(got, tb.name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("reads %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDueHeapOrder checks that tables wait for their due time in order,
// ties going to the first by name.
func TestDueHeapOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		due  []time.Duration // by table order
		want []int
	}{
		{"all due at once", []time.Duration{0, 0, 0, 0}, []int{0, 1, 2, 3}},
		{"by due", []time.Duration{3, 1, 2, 0}, []int{3, 1, 2, 0}},
		{"ties by name", []time.Duration{2, 1, 2, 1}, []int{1, 3, 0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tableHeap{less: dueFirst}
			for i, d := range tc.due {
				heap.Push(&h, &tableState{order: i, due: t0.Add(d * time.Second)})
			}
			var got []int
			for h.Len() > 0 {
				got = append(got, heap.Pop(&h).(*tableState).order)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("read order %v, want %v", got, tc.want)
			}
		})
	}
}
