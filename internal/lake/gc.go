package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Names returns every object the state names: every table's Objects and
// the pending garbage.
func (s *State) Names() map[string]bool {
	m := map[string]bool{}
	for _, ts := range s.Tables {
		for _, p := range ts.Objects() {
			m[p] = true
		}
	}
	for _, g := range s.Garbage {
		m[g.Path] = true
	}
	return m
}

// removeOrphans deletes data objects (Format.Owns) no committed state names
// that are older than the grace period: what a writer killed between writing its
// data objects and its commit record left behind. The age condition keeps
// it off objects another process is writing right now.
func (l *Lake) removeOrphans(ctx context.Context, s *State) error {
	objs, err := l.st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("listing the lake to remove orphans: %w", err)
	}
	if err := l.f.Open(l.o, s, objs); err != nil {
		return err
	}
	keep := s.Names()
	cutoff := l.opts.Now().Add(-l.opts.Grace)
	n := 0
	for _, o := range objs {
		if data, _ := l.f.Owns(o.Name, s); keep[o.Name] || !data {
			continue
		}
		if l.opts.Grace > 0 && o.ModTime.After(cutoff) {
			continue
		}
		if err := l.st.Delete(ctx, o.Name); err != nil {
			return fmt.Errorf("removing orphan %s: %w", o.Name, err)
		}
		n++
	}
	if n > 0 {
		l.log.Info("lake: removed orphans a previous run left", "count", n)
	}
	if err := l.pickSession(objs, keep); err != nil {
		return err
	}
	// Stores that stage objects (the local folder) may also hold staging
	// files of writes a kill interrupted.
	if c, ok := l.st.(interface {
		CleanTemp(context.Context, time.Duration) (int, error)
	}); ok {
		if _, err := c.CleanTemp(ctx, l.opts.Grace); err != nil {
			return err
		}
	}
	return nil
}

// collectGarbage deletes the garbage whose grace period has passed, then
// commits the shorter list. A crash in between leaves names of deleted
// objects in the list; deleting them again is harmless.
func (l *Lake) collectGarbage(ctx context.Context) error {
	s := l.State()
	now := l.opts.Now()
	var done []string
	for _, g := range s.Garbage {
		if now.Sub(g.Since) < l.opts.Grace {
			continue
		}
		if err := l.st.Delete(ctx, g.Path); err != nil {
			return fmt.Errorf("deleting %s after its grace period: %w", g.Path, err)
		}
		done = append(done, g.Path)
	}
	if len(done) == 0 {
		return nil
	}
	gone := make(map[string]bool, len(done))
	for _, p := range done {
		gone[p] = true
	}
	return l.commitSwap(ctx, func(cur *State, now time.Time) (*record, error) {
		var left []Garbage
		for _, g := range cur.Garbage {
			if !gone[g.Path] {
				left = append(left, g)
			}
		}
		return &record{Tables: map[string]*TableState{}, Garbage: left}, nil
	})
}

// commitSwap commits a record that build derives from the current state,
// under the commit lock. Maintain uses it to publish work it prepared
// without the lock; build sees every commit made meanwhile and must keep
// their effects.
func (l *Lake) commitSwap(ctx context.Context, build func(cur *State, now time.Time) (*record, error)) error {
	if l.closed.Load() {
		return errClosed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.reloadIfUncertain(ctx); err != nil {
		return err
	}
	cur := l.state.Load()
	now := l.opts.Now().UTC()
	rec, err := build(cur, now)
	if err != nil || rec == nil {
		return err
	}
	rec.Seq, rec.Committed, rec.Link = cur.Seq+1, now, l.opts.Link
	rec.StreamCursor, rec.StreamSynced = cur.StreamCursor, cur.StreamSynced
	size, err := writeRecord(ctx, l.st, cur, rec)
	if err != nil {
		if errors.Is(err, errUncertain) {
			l.reload = true
		}
		return err
	}
	next := cur.apply(rec)
	l.state.Store(next)
	l.afterCommit(ctx, next, rec, size)
	return nil
}

// pickSession makes sure the session token of this writer appears in no
// object name, listed or named by the state (garbage included), so that
// no name this writer makes can be one a collection will delete.
func (l *Lake) pickSession(objs []store.Object, keep map[string]bool) error {
	used := func(session string) bool {
		mark := "_" + session + "_"
		for _, o := range objs {
			if strings.Contains(o.Name, mark) {
				return true
			}
		}
		for p := range keep {
			if strings.Contains(p, mark) {
				return true
			}
		}
		return false
	}
	for range 10 {
		if !used(l.session) {
			return nil
		}
		l.session = newSession()
	}
	return fmt.Errorf("could not draw an unused object name prefix after 10 tries (last %q)", l.session)
}
