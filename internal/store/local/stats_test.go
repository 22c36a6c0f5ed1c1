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
	// Fsyncs: each object's file and folder, and the lake folder once for
	// the new folder a.
	want := store.Stats{Creates: 1, PutIfAbsents: 1, Opens: 1, Lists: 1, Listed: 2, Deletes: 1, Fsyncs: 5, BytesWritten: 8}
	if got != want {
		t.Fatalf("stats: got %+v, want %+v", got, want)
	}
	if got.Ops() != 5 {
		t.Fatalf("Ops: got %d, want 5", got.Ops())
	}
}

// TestBatchSyncsEachFolderOnce counts the fsyncs of a stage and a
// publication of seven files each, as a table of seven partitions makes:
// on the store every object syncs its folder; in a batch each folder is
// synced once, by Sync, and a PutIfAbsent is durable when it returns.
func TestBatchSyncsEachFolderOnce(t *testing.T) {
	ctx := t.Context()
	files := []string{"2019", "2020", "2021", "2022", "2023", "2024", "2025"}
	write := func(st store.Store) {
		t.Helper()
		for _, f := range files {
			if err := store.Put(ctx, st, "data/t/"+f+".csv", []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range files {
			if err := st.Copy(ctx, "data/t/"+f+".csv", "t/"+f+".csv"); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name              string
		batch             bool
		before, afterSync int64
	}{
		// 7 files, 7 syncs of data/t, 7 of t, and the new folders data,
		// data/t and t in their parents.
		{"store", false, 24, 24},
		// 7 files; then data/t, t, data and the lake folder, once each.
		{"batch", true, 7, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLocal(t)
			var st store.Store = l
			b := store.NewBatch(l)
			if tt.batch {
				st = b
			}
			start := Stats()
			write(st)
			if got := Stats().Sub(start).Fsyncs; got != tt.before {
				t.Fatalf("fsyncs before Sync: got %d, want %d", got, tt.before)
			}
			if err := b.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := Stats().Sub(start).Fsyncs; got != tt.afterSync {
				t.Fatalf("fsyncs after Sync: got %d, want %d", got, tt.afterSync)
			}
			if err := b.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := Stats().Sub(start).Fsyncs; got != tt.afterSync {
				t.Fatalf("a second Sync with nothing new synced again: %d fsyncs, want %d", got, tt.afterSync)
			}
			for _, f := range files {
				if got, err := store.ReadAll(ctx, l, "t/"+f+".csv"); err != nil || string(got) != f {
					t.Fatalf("t/%s.csv through the store: %q, %v", f, got, err)
				}
			}
		})
	}
}

// TestBatchPutIfAbsentDurable: a batch's PutIfAbsent syncs its file and
// folder before it returns, and leaves nothing to Sync.
func TestBatchPutIfAbsentDurable(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	if err := store.Put(ctx, l, "log/0.json", nil); err != nil {
		t.Fatal(err)
	}
	b := l.Batch()
	start := Stats()
	if err := b.PutIfAbsent(ctx, "log/1.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if got := Stats().Sub(start).Fsyncs; got != 2 {
		t.Fatalf("PutIfAbsent in a batch: %d fsyncs, want 2 (file and folder)", got)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Stats().Sub(start).Fsyncs; got != 2 {
		t.Fatalf("Sync after PutIfAbsent alone: %d fsyncs, want none more", got-2)
	}
}

// TestBatchSyncSkipsRemovedFolder: Delete removes the folders it empties;
// a batch that wrote there syncs the rest.
func TestBatchSyncSkipsRemovedFolder(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	b := l.Batch()
	if err := store.Put(ctx, b, "a/x/1.csv", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, b, "b/2.csv", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a/x/1.csv"); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("Sync after the folder a/x went: %v", err)
	}
}
