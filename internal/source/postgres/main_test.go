package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var dbSeq, linkSeq atomic.Int64

// newDB creates a fresh database in the shared cluster, runs setup in it and
// returns its DSN.
func newDB(t *testing.T, setup ...string) (*pgtest.Cluster, string, string) {
	t.Helper()
	c := pgtest.Shared(t)
	name := fmt.Sprintf("db%d", dbSeq.Add(1))
	dsn := c.CreateDB(t, name)
	c.Exec(t, name, setup...)
	return c, name, dsn
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	if cfg.Link == "" {
		// Slots are cluster-wide: one link per test database.
		cfg.Link = fmt.Sprintf("test%d", linkSeq.Add(1))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// collector records emitted batches.
type collector struct {
	mu      sync.Mutex
	batches []source.Batch
	// fail, when set, is returned by emit for the batch with this index.
	failAt int
	fail   error
}

func (c *collector) emit(_ context.Context, b source.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil && len(c.batches) == c.failAt {
		return c.fail
	}
	c.batches = append(c.batches, b)
	return nil
}

// rows folds the batches into the latest values per table and ID, applying
// changes as the lake does: by highest version, a truncate emptying the
// table.
func (c *collector) rows() map[string]map[string]source.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]source.Change{}
	for _, b := range c.batches {
		for _, ch := range b.Changes {
			if out[ch.Table] == nil || ch.Truncate {
				out[ch.Table] = map[string]source.Change{}
			}
			if ch.Truncate {
				continue
			}
			if prev, ok := out[ch.Table][ch.ID]; ok && prev.Version >= ch.Version {
				continue
			}
			out[ch.Table][ch.ID] = ch
		}
	}
	return out
}

// value returns ch's value of column col, nil when it has none.
func value(ch source.Change, col string) any {
	if i := slices.Index(ch.Columns, col); i >= 0 {
		return ch.Values[i]
	}
	return nil
}

func (c *collector) last() source.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches[len(c.batches)-1]
}
