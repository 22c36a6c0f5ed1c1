package lake

import (
	"testing"
	"time"
)

// A table still receiving changes is not compacted for its pending rows
// alone; a quiet second, CompactAge or Settle make it due, and Settle folds
// everything pending in rounds of foldFactor*CompactRows rows.
func TestCompactionWaitsForQuietAndSettleFoldsAll(t *testing.T) {
	c := newClock()
	l, err := Open(ctxT(t), newStore(t), Options{Link: "test", Now: c.now, Grace: -1, MaxFileRows: 100, CompactRows: 2, CompactAge: time.Hour, SnapshotsToKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: &Definition{Source: accountSchema()}, Changes: accounts(0, 50, t0), Phase: Completed}}})
	update := func(from, n int) {
		for i := range n {
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: accounts(from+i, 1, t0)}}})
		}
	}
	pending := func() int { return len(l.State().Tables["account"].Changes) }

	update(0, 5)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if pending() != 5 {
		t.Fatalf("compacted while changes still arrive: %d change files left, want 5", pending())
	}
	c.add(compactQuiet)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 {
		t.Fatalf("not compacted after a quiet second: %d change files left", pending())
	}

	update(10, 2*foldFactor*2+3)
	if err := l.Settle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ts := l.State().Tables["account"]
	if len(ts.Changes) != 0 {
		t.Fatalf("Settle left %d change files", len(ts.Changes))
	}
	if rows := current(t, l.st, ts); len(rows) != 53 {
		t.Fatalf("%d rows after Settle, want 53 (3 new Ids)", len(rows))
	}
}
