package lake

import (
	"context"
	"errors"
	"sync"

	"github.com/lakelink/lakelink/internal/store"
)

// Reader follows the committed state of a lake for a process that reads it
// (the lake database, a query command). Unlike ReadState, which reads the
// newest checkpoint and every record after it, State reads only the commit
// records added since its previous call: when nothing was committed it
// costs one failed Open and one short List. Safe for concurrent use.
type Reader struct {
	st store.Store
	mu sync.Mutex
	s  *State
}

// NewReader returns a Reader of the lake in st.
func NewReader(st store.Store) *Reader { return &Reader{st: st} }

// State returns the latest committed state; callers must not modify it.
func (r *Reader) State(ctx context.Context) (*State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.s == nil {
		return r.reload(ctx)
	}
	// A checkpoint newer than the cached state may mean the records after
	// it were pruned (a reader far behind): read afresh.
	cps, err := r.st.List(ctx, checkpointDir)
	if err != nil {
		return nil, err
	}
	for _, o := range cps {
		if seq, ok := parseSeq(checkpointDir, o.Name); ok && seq > r.s.Seq+keepCommits/2 {
			return r.reload(ctx)
		}
	}
	s := r.s
	for {
		rec, err := readRecord(ctx, r.st, logName(s.Seq+1))
		if errors.Is(err, store.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		s = s.apply(rec)
	}
	r.s = s
	return s, nil
}

func (r *Reader) reload(ctx context.Context) (*State, error) {
	s, err := ReadState(ctx, r.st)
	if err != nil {
		return nil, err
	}
	r.s = s
	return s, nil
}
