package sqldb

import (
	"maps"
	"sync"

	"github.com/lakelink/lakelink/internal/lake"
)

// liveSet tells the Parquet cache which entries the latest state names, so
// that its sweep evicts only the others. Views are created lazily, so the
// keys of the files they read (db.plan) are not enough: a one-off query of
// one table must not evict the entries of the other thousand. The keys of
// every file are computed in the background (on 2000 tables of 14 files
// that takes longer than the query), from the sizes the state records; a
// file whose size on disk differs has another key in lookup, which is
// always live through planned. Until the first set is handed over the
// cache does not sweep (newCache).
type liveSet struct {
	mu      sync.Mutex
	seq     int64           // the state all is of
	all     map[string]bool // keys of every file of that state; nil before the first
	planned map[string]bool // keys of the files the views read
	quit    chan struct{}   // closed by stop
	stopped sync.Once
	wg      sync.WaitGroup
}

// set records the keys the views of state read and hands the cache every
// live key: at once when those of state are known, else once computed.
func (l *liveSet) set(c *cache, state *lake.State, planned map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.planned = planned
	if l.all != nil && l.seq == state.Seq {
		c.setLive(union(l.all, planned))
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		keys, ok := liveKeys(state, l.quit)
		if !ok {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.all != nil && state.Seq < l.seq {
			return // a newer state's set is there already
		}
		l.seq, l.all = state.Seq, keys
		c.setLive(union(keys, l.planned))
	}()
}

// stop ends the computations and waits for them; DB.Close may call it more
// than once.
func (l *liveSet) stop() {
	l.stopped.Do(func() { close(l.quit) })
	l.wg.Wait()
}

// liveKeys returns the cache keys of the files the views of state read:
// every table's partition files and newest snapshot. It gives up (false)
// when quit is closed.
func liveKeys(state *lake.State, quit <-chan struct{}) (map[string]bool, bool) {
	keys := map[string]bool{}
	for _, t := range state.Tables {
		select {
		case <-quit:
			return nil, false
		default:
		}
		if len(t.Columns) == 0 {
			continue
		}
		cols := columns(t.Columns)
		for _, files := range [][]lake.File{t.Files, newestSnapshot(t)} {
			for _, f := range files {
				keys[cacheKey(f.Path, f.Bytes, cols)] = true
			}
		}
	}
	return keys, true
}

// union is a new set of the keys of a and b.
func union(a, b map[string]bool) map[string]bool {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
