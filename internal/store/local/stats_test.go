package local

import (
	"testing"

	"github.com/lakelink/lakelink/internal/store"
)

// TestStats checks what each operation adds to the counters that
// `lakelink bench` reports per commit.
func TestLocalStats(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	before := Stats()
	if err := store.Put(ctx, l, "a/b.csv", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := l.PutIfAbsent(ctx, "a/c.csv", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadAll(ctx, l, "a/b.csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.List(ctx, "a/"); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "a/c.csv"); err != nil {
		t.Fatal(err)
	}
	got := Stats().Sub(before)
	want := store.Stats{Creates: 1, PutIfAbsents: 1, Opens: 1, Lists: 1, Listed: 2, Deletes: 1, Fsyncs: 4, BytesWritten: 8}
	if got != want {
		t.Fatalf("stats: got %+v, want %+v", got, want)
	}
	if got.Ops() != 5 {
		t.Fatalf("Ops: got %d, want 5", got.Ops())
	}
}
