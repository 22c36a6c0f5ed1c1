// Package lease keeps one writer per lake (issue #15, case 13): a second
// `lakelink sync` on a lake another one writes refuses to start and names
// the other writer, instead of running until its first commit conflicts.
//
// The lease lives in the lake, so it works wherever the lake does, with
// only what store.Store offers (object stores have no locks or renames):
//
//	_lakelink/writer/<n>.json   {"host":..., "pid":..., "since":..., "renewed":..., "released":...}
//
// Invariants:
//   - The holder is the writer of the highest-numbered object. A writer
//     becomes the holder only by creating object n+1 with PutIfAbsent, so of
//     several writers racing for the same n exactly one wins.
//   - Only the holder writes its own object (renewals, the release), by
//     whole-object replacement.
//   - Object n+1 may be created only when object n is released, expired
//     (renewed + TTL in the past), or held by a process proven dead (same
//     host, no such pid): a writer killed with SIGKILL on this machine is
//     replaced at once, one on another machine after the TTL.
//   - A holder that finds a higher object than its own has lost the lease
//     and must stop writing (Lost). Commits are put-if-absent by sequence
//     number, so even a holder that stalled past its TTL cannot overwrite a
//     newer writer's commit: the lease makes conflicts rare and explained,
//     the commit protocol keeps them harmless.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/proc"
	"github.com/lakelink/lakelink/internal/store"
)

// dir holds the lease objects.
const dir = "_lakelink/writer/"

// DefaultTTL is how long a lease lasts without renewal; it is renewed every
// TTL/3.
const DefaultTTL = 30 * time.Second

// Holder describes the writer holding a lease.
type Holder struct {
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
	Renewed  time.Time `json:"renewed"`
	TTL      Duration  `json:"ttl"`
	Released bool      `json:"released,omitempty"`
}

// Duration is a time.Duration written as text ("30s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// expires is when the lease ends unless renewed.
func (h Holder) expires() time.Time { return h.Renewed.Add(time.Duration(h.TTL)) }

// HeldError says another live writer holds the lake's lease.
type HeldError struct {
	Holder Holder
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("another lakelink sync writes this lake (host %s, pid %d, since %s); stop it first, "+
		"or, if it is gone, wait until its lease expires at %s", h.Host, h.PID,
		h.Since.Local().Format(time.RFC3339), h.expires().Local().Format(time.RFC3339))
}

// ErrLost is the cause a holder's Lost channel reports.
var ErrLost = errors.New("another writer took over this lake's lease: this sync stops so that only one writes")

// Options tune Acquire; the zero value is the default.
type Options struct {
	TTL time.Duration
	// Now and Alive replace the clock and the check that a pid of this
	// host still runs, for tests.
	Now   func() time.Time
	Alive func(pid int) bool
	// Host and PID name this writer; default os.Hostname and os.Getpid.
	Host string
	PID  int
}

// Lease is a held lease, renewed in the background until Release.
type Lease struct {
	st     store.Store
	opts   Options
	name   string
	holder Holder

	mu       sync.Mutex
	lost     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	isLost   bool
	released bool
}

// Acquire takes the lease of the lake in st, or returns a *HeldError naming
// the writer that holds it.
func Acquire(ctx context.Context, st store.Store, opts Options) (*Lease, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Alive == nil {
		opts.Alive = proc.Alive
	}
	if opts.Host == "" {
		opts.Host = proc.Host()
	}
	if opts.PID == 0 {
		opts.PID = os.Getpid()
	}
	for attempt := 0; attempt < 5; attempt++ {
		n, cur, err := newest(ctx, st)
		if err != nil {
			return nil, err
		}
		if cur != nil && !takeable(*cur, opts) {
			return nil, &HeldError{Holder: *cur}
		}
		now := opts.Now()
		h := Holder{Host: opts.Host, PID: opts.PID, Since: now, Renewed: now, TTL: Duration(opts.TTL)}
		data, err := json.Marshal(h)
		if err != nil {
			return nil, err
		}
		name := objectName(n + 1)
		if err := st.PutIfAbsent(ctx, name, data); err != nil {
			if errors.Is(err, store.ErrExist) {
				continue // another writer won this round: look again
			}
			return nil, fmt.Errorf("taking the writer lease %s: %w", name, err)
		}
		// Older objects only say who wrote before: drop them.
		for i := n; i >= 1 && i > n-3; i-- {
			st.Delete(ctx, objectName(i))
		}
		l := &Lease{st: st, opts: opts, name: name, holder: h,
			lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
		go l.renew()
		return l, nil
	}
	return nil, errors.New("taking the writer lease: other writers keep racing for it; try again")
}

// takeable reports whether a new writer may replace the holder h.
func takeable(h Holder, opts Options) bool {
	if h.Released || !opts.Now().Before(h.expires()) {
		return true
	}
	return h.Host == opts.Host && h.PID != opts.PID && !opts.Alive(h.PID)
}

func objectName(n int64) string { return fmt.Sprintf("%s%020d.json", dir, n) }

// newest returns the number and holder of the highest lease object, 0 and
// nil when there is none.
func newest(ctx context.Context, st store.Store) (int64, *Holder, error) {
	objs, err := st.List(ctx, dir)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the writer lease: %w", err)
	}
	for i := len(objs) - 1; i >= 0; i-- {
		n, err := strconv.ParseInt(strings.TrimSuffix(path.Base(objs[i].Name), ".json"), 10, 64)
		if err != nil {
			continue // not a lease object
		}
		data, err := store.ReadAll(ctx, st, objs[i].Name)
		if errors.Is(err, store.ErrNotExist) {
			continue // dropped by the writer that took over after it
		}
		if err != nil {
			return 0, nil, fmt.Errorf("reading the writer lease %s: %w", objs[i].Name, err)
		}
		var h Holder
		if err := json.Unmarshal(data, &h); err != nil {
			// A damaged lease protects nothing: it may be replaced.
			return n, &Holder{Released: true}, nil
		}
		return n, &h, nil
	}
	return 0, nil, nil
}

// Holder returns this writer's lease record.
func (l *Lease) Holder() Holder { return l.holder }

// Lost is closed when another writer took the lease over (this one stalled
// or could not renew past its TTL, and another writer started meanwhile):
// the caller must stop writing. Failed renewals alone never close it.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

func (l *Lease) renew() {
	defer close(l.done)
	every := l.opts.TTL / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := l.renewOnce(ctx)
		cancel()
		// A renewal that fails (the lake cannot be read or written) is
		// tried again at the next tick, however long that lasts: the
		// lease is lost only when a newer object names another writer.
		// A lake unwritable for longer than the TTL stops this writer's
		// commits as much as its renewals, and a commit that lands after
		// another writer took over is refused by the log's put-if-absent
		// sequence, so waiting is safe; stopping would turn a storage
		// outage into a sync that exits.
		if errors.Is(err, ErrLost) {
			l.markLost()
			return
		}
	}
}

func (l *Lease) renewOnce(ctx context.Context) error {
	n, _, err := newest(ctx, l.st)
	if err != nil {
		return err
	}
	if objectName(n) != l.name {
		return ErrLost
	}
	l.mu.Lock()
	h := l.holder
	h.Renewed = l.opts.Now()
	l.mu.Unlock()
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := store.Put(ctx, l.st, l.name, data); err != nil {
		return err
	}
	l.mu.Lock()
	l.holder = h
	l.mu.Unlock()
	return nil
}

func (l *Lease) markLost() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.isLost {
		l.isLost = true
		close(l.lost)
	}
}

// Release stops the renewals and marks the lease released, so that the next
// writer starts at once. It is safe to call more than once.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	select {
	case <-l.lost:
		return nil // the object is another writer's business now
	default:
	}
	l.mu.Lock()
	h := l.holder
	l.mu.Unlock()
	h.Released = true
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := store.Put(ctx, l.st, l.name, data); err != nil {
		return fmt.Errorf("releasing the writer lease %s: %w", l.name, err)
	}
	return nil
}
