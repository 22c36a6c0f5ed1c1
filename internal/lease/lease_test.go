package lease

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// clock is a settable time for lease expiry.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.now.Load()) }
func (c *clock) add(d time.Duration) { c.now.Add(int64(d)) }
func newClock() *clock {
	c := &clock{}
	c.now.Store(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func writer(c *clock, pid int) Options {
	return Options{TTL: time.Hour, Now: c.Now, Host: "h1", PID: pid, Alive: func(int) bool { return true }}
}
func release(t *testing.T, l *Lease) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSecondWriterRefused(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t), newClock()
	first, err := Acquire(ctx, st, writer(c, 100))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, st, writer(c, 200))
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.PID != 100 || held.Holder.Host != "h1" {
		t.Fatalf("second writer: %v, want a HeldError naming pid 100 on h1", err)
	}
	for _, want := range []string{"host h1", "pid 100", "since"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	release(t, first)
	second, err := Acquire(ctx, st, writer(c, 200))
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	release(t, second)
}

func TestTakeover(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		host    string
		alive   bool
		takes   bool
	}{
		{"live holder, lease current", 0, "h1", true, false},
		{"lease expired", 2 * time.Hour, "h2", true, true},
		{"holder on this host is dead", 0, "h1", false, true},
		{"holder on another host looks dead here", 0, "h2", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, c := newStore(t), newClock()
			first, err := Acquire(ctx, st, writer(c, 100))
			if err != nil {
				t.Fatal(err)
			}
			defer first.Release(ctx)
			c.add(tt.advance)
			opts := writer(c, 200)
			opts.Host = tt.host
			opts.Alive = func(int) bool { return tt.alive }
			second, err := Acquire(ctx, st, opts)
			if tt.takes != (err == nil) {
				t.Fatalf("takes over: %v, want %v", err, tt.takes)
			}
			if !tt.takes {
				return
			}
			defer second.Release(ctx)
			// The first writer learns at its next renewal that it lost.
			if err := first.renewOnce(ctx); !errors.Is(err, ErrLost) {
				t.Fatalf("first writer's renewal: %v, want ErrLost", err)
			}
			if err := second.renewOnce(ctx); err != nil {
				t.Fatalf("second writer's renewal: %v", err)
			}
		})
	}
}

// TestRace: of writers starting together, exactly one holds the lease.
func TestRace(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t), newClock()
	var wg sync.WaitGroup
	var won atomic.Int32
	for pid := 1; pid <= 8; pid++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := Acquire(ctx, st, writer(c, pid))
			var held *HeldError
			switch {
			case err == nil:
				won.Add(1)
				t.Cleanup(func() { l.Release(ctx) })
			case !errors.As(err, &held):
				t.Errorf("writer %d: %v", pid, err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d writers hold the lease, want 1", won.Load())
	}
}

// TestRenewalLoop: the background renewal keeps the lease and reports a
// takeover on Lost. The clock is fake, so that no deadline depends on how
// busy the machine is: the test waits for the renewal it needs.
func TestRenewalLoop(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t), newClock()
	opts := writer(c, 100)
	opts.TTL = 30 * time.Millisecond
	first, err := Acquire(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour) // long past the TTL, unless the holder renews
	waitRenewed(t, st, c.Now())
	if _, err := Acquire(ctx, st, writer(c, 200)); err == nil {
		t.Fatal("a renewed lease was taken over")
	}
	// A writer on another host whose clock is far ahead takes it over.
	later := func() time.Time { return c.Now().Add(24 * time.Hour) }
	second, err := Acquire(ctx, st, Options{TTL: time.Hour, Now: later, Host: "h2", PID: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release(ctx)
	select {
	case <-first.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the first writer did not notice the takeover")
	}
	release(t, first)
}

// outage is a store whose reads and writes fail while down is set, as a
// lake that is unreachable or read-only for a while.
type outage struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("lake unreachable")

func (o *outage) Create(ctx context.Context, name string) (store.Writer, error) {
	if o.down.Load() {
		return nil, errDown
	}
	return o.Store.Create(ctx, name)
}

func (o *outage) List(ctx context.Context, prefix string) ([]store.Object, error) {
	if o.down.Load() {
		return nil, errDown
	}
	return o.Store.List(ctx, prefix)
}

// waitRenewed waits until the holder's object says it was renewed at now.
func waitRenewed(t *testing.T, st store.Store, now time.Time) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, h, err := newest(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if h.Renewed.Equal(now) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder did not renew its lease")
		}
	}
}

// TestRenewalOutage: renewals failing for many TTLs do not lose the lease
// (a storage outage must not end the sync); the holder renews when the
// store is back, and learns it lost only if another writer took over.
func TestRenewalOutage(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(map[bool]string{false: "nobody took over", true: "another writer took over"}[takeover], func(t *testing.T) {
			ctx := context.Background()
			base, c := newStore(t), newClock()
			st := &outage{Store: base}
			opts := writer(c, 100)
			opts.TTL = 30 * time.Millisecond
			first, err := Acquire(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Release(ctx)
			st.down.Store(true)
			c.add(time.Hour) // the lease expired long ago, by the clock
			if takeover {
				second, err := Acquire(ctx, base, writer(c, 200))
				if err != nil {
					t.Fatal(err)
				}
				defer second.Release(ctx)
			}
			time.Sleep(20 * opts.TTL) // many failed renewals
			select {
			case <-first.Lost():
				t.Fatal("failed renewals lost the lease")
			default:
			}
			st.down.Store(false)
			if !takeover {
				waitRenewed(t, base, c.Now())
				return
			}
			select {
			case <-first.Lost():
			case <-time.After(10 * time.Second):
				t.Fatal("the first writer did not notice the takeover once the store was back")
			}
		})
	}
}
