// Package storetest is the contract suite every store.Store backend runs
// unchanged (store/local today; the object stores of issue #11 next): what
// the commit protocol relies on, proven the same way for each. A backend's
// test calls Run with a function that returns a new, empty store.
//
// It may import only the standard library and package store: it tests a
// backend through the interface alone.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Open returns a new, empty store for one test; it fails t if it cannot.
type Open func(t *testing.T) store.Store

// Run runs the whole contract against the stores open returns.
func Run(t *testing.T, open Open) {
	t.Run("CreateReplacesAtomically", func(t *testing.T) { createReplaces(t, open(t)) })
	t.Run("ReaderNeverSeesAMix", func(t *testing.T) { readerNeverSeesAMix(t, open(t)) })
	t.Run("AbortLeavesNothing", func(t *testing.T) { abortLeavesNothing(t, open(t)) })
	t.Run("PutIfAbsent", func(t *testing.T) { putIfAbsent(t, open(t)) })
	t.Run("PutIfAbsentRace", func(t *testing.T) { putIfAbsentRace(t, open(t)) })
	t.Run("Copy", func(t *testing.T) { RunCopy(t, open) })
	t.Run("CopyModTime", func(t *testing.T) { copyModTime(t, open(t)) })
	t.Run("List", func(t *testing.T) { list(t, open(t)) })
	t.Run("ListPastAPage", func(t *testing.T) { listPastAPage(t, open(t)) })
	t.Run("NotExist", func(t *testing.T) { notExist(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { deletes(t, open(t)) })
	t.Run("InvalidNames", func(t *testing.T) { invalidNames(t, open(t)) })
	t.Run("Location", func(t *testing.T) { location(t, open(t)) })
}

// Names returns the names of objs joined by commas, for messages.
func Names(objs []store.Object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return strings.Join(out, ",")
}

func put(t *testing.T, st store.Store, name, data string) {
	t.Helper()
	if err := store.Put(t.Context(), st, name, []byte(data)); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// holds fails t unless the object name holds want.
func holds(t *testing.T, st store.Store, name, want, when string) {
	t.Helper()
	got, err := store.ReadAll(t.Context(), st, name)
	if err != nil || string(got) != want {
		t.Fatalf("%s: %s holds %q (%v), want %q", when, name, got, err, want)
	}
}

// absent fails t unless the object name is absent: Open fails with
// ErrNotExist and List does not show it.
func absent(t *testing.T, st store.Store, name, when string) {
	t.Helper()
	ctx := t.Context()
	if r, err := st.Open(ctx, name); !errors.Is(err, store.ErrNotExist) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("%s: Open(%s) = %v, want ErrNotExist", when, name, err)
	}
	objs, err := st.List(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(objs, func(o store.Object) bool { return o.Name == name }) {
		t.Fatalf("%s: List shows %s", when, name)
	}
}

// listed returns what List(prefix) returns, failing t on an error.
func listed(t *testing.T, st store.Store, prefix string) string {
	t.Helper()
	objs, err := st.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return Names(objs)
}

// createReplaces: until Close readers see the old object and List no
// trace of the write; after it, the new one with its size.
func createReplaces(t *testing.T, st store.Store) {
	ctx := t.Context()
	put(t, st, "a/b.csv", "old")
	w, err := st.Create(ctx, "a/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("newer")); err != nil {
		t.Fatal(err)
	}
	fresh, err := st.Create(ctx, "a/c.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	holds(t, st, "a/b.csv", "old", "before Close")
	absent(t, st, "a/c.csv", "before Close")
	if got := listed(t, st, "a/"); got != "a/b.csv" {
		t.Fatalf("List during writes: %s", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}
	holds(t, st, "a/b.csv", "newer", "after Close")
	holds(t, st, "a/c.csv", "c", "after Close")
	objs, err := st.List(ctx, "a/")
	if err != nil {
		t.Fatal(err)
	}
	if Names(objs) != "a/b.csv,a/c.csv" || objs[0].Size != 5 || objs[1].Size != 1 {
		t.Fatalf("List after Close: %+v", objs)
	}
}

// readerNeverSeesAMix replaces one object over and over with objects of
// different sizes while readers read it: each read is one whole version.
func readerNeverSeesAMix(t *testing.T, st store.Store) {
	ctx := t.Context()
	const versions = 24
	// Version v is size(v) bytes of the letter 'a'+v: a read that mixes
	// two, or stops short, shows.
	size := func(v int) int { return 256<<10 + v*4099 }
	version := func(v int) []byte { return bytes.Repeat([]byte{byte('a' + v)}, size(v)) }
	if err := store.Put(ctx, st, "t/hot.csv", version(0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	reads := make([]int, 4)
	for r := range reads {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := store.ReadAll(ctx, st, "t/hot.csv")
				if err != nil {
					t.Errorf("read during replacements: %v", err)
					return
				}
				v := int(got[0] - 'a')
				if v < 0 || v >= versions || !bytes.Equal(got, version(v)) {
					t.Errorf("a reader saw %d bytes starting %q: not one whole version", len(got), got[:min(len(got), 8)])
					return
				}
				reads[r]++
			}
		})
	}
	for v := 1; v < versions; v++ {
		if err := store.Put(ctx, st, "t/hot.csv", version(v)); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	for r, n := range reads {
		if n == 0 {
			t.Errorf("reader %d read nothing while the object was replaced", r)
		}
	}
	holds(t, st, "t/hot.csv", string(version(versions-1)), "after the replacements")
}

// abortLeavesNothing: an aborted write of a new name leaves no object,
// of an existing name the object as it was; List shows no trace of either.
func abortLeavesNothing(t *testing.T, st store.Store) {
	ctx := t.Context()
	put(t, st, "a/kept.csv", "kept")
	for _, name := range []string{"a/new.csv", "a/kept.csv"} {
		w, err := st.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("discarded")); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort of %s: %v", name, err)
		}
	}
	absent(t, st, "a/new.csv", "after Abort")
	holds(t, st, "a/kept.csv", "kept", "after Abort")
	if got := listed(t, st, ""); got != "a/kept.csv" {
		t.Fatalf("List after Abort: %s", got)
	}
}

func putIfAbsent(t *testing.T, st store.Store) {
	ctx := t.Context()
	if err := st.PutIfAbsent(ctx, "log/1.json", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutIfAbsent(ctx, "log/1.json", []byte("second")); !errors.Is(err, store.ErrExist) {
		t.Fatalf("PutIfAbsent of a taken name: %v, want ErrExist", err)
	}
	holds(t, st, "log/1.json", "first", "after a lost PutIfAbsent")
	// A name Create wrote is taken as well.
	put(t, st, "log/2.json", "created")
	if err := st.PutIfAbsent(ctx, "log/2.json", []byte("second")); !errors.Is(err, store.ErrExist) {
		t.Fatalf("PutIfAbsent of a created name: %v, want ErrExist", err)
	}
	holds(t, st, "log/2.json", "created", "after a lost PutIfAbsent")
	// A deleted name is free again.
	if err := st.Delete(ctx, "log/1.json"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutIfAbsent(ctx, "log/1.json", nil); err != nil {
		t.Fatalf("PutIfAbsent of a deleted name: %v", err)
	}
	holds(t, st, "log/1.json", "", "after PutIfAbsent of an empty object")
}

// putIfAbsentRace: writers released at once race for each name; exactly
// one wins, every other gets ErrExist, and the object is the winner's.
func putIfAbsentRace(t *testing.T, st store.Store) {
	ctx := t.Context()
	const names, writers = 8, 32
	for n := range names {
		name := fmt.Sprintf("log/%020d.json", n)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				errs[w] = st.PutIfAbsent(ctx, name, []byte(fmt.Sprintf("writer %d", w)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: writers %d and %d both won", name, winner, w)
			case err == nil:
				winner = w
			case !errors.Is(err, store.ErrExist):
				t.Fatalf("%s: writer %d: %v, want ErrExist", name, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer won", name)
		}
		holds(t, st, name, fmt.Sprintf("writer %d", winner), "after the race")
	}
	if objs, err := st.List(ctx, "log/"); err != nil || len(objs) != names {
		t.Fatalf("List after the races: %d objects (%v), want %d", len(objs), err, names)
	}
}

// RunCopy runs the Copy part of the contract alone, for a backend with more
// than one way to copy (local: a hard link, or the bytes where the file
// system refuses links) to run against each.
func RunCopy(t *testing.T, open Open) {
	tests := []struct {
		name     string
		existing [][2]string // objects (name, content) before the copy; content "@x" is a Copy of x
		from, to string
		want     string // the content of to afterwards; with wantErr, "" means to stays absent
		wantErr  error
	}{
		{"new name", [][2]string{{"a/2024_1.csv", "rows"}}, "a/2024_1.csv", "a/Snapshot/2024_9.csv", "rows", nil},
		{"replaces to", [][2]string{{"a/2024_1.csv", "new"}, {"a/Snapshot/2024_9.csv", "old"}}, "a/2024_1.csv", "a/Snapshot/2024_9.csv", "new", nil},
		{"to already a copy", [][2]string{{"a/2024_1.csv", "rows"}, {"a/Snapshot/2024_9.csv", "@a/2024_1.csv"}}, "a/2024_1.csv", "a/Snapshot/2024_9.csv", "rows", nil},
		{"same name", [][2]string{{"a/2024_1.csv", "rows"}}, "a/2024_1.csv", "a/2024_1.csv", "rows", nil},
		{"empty object", [][2]string{{"a/2024_1.csv", ""}}, "a/2024_1.csv", "b.csv", "", nil},
		{"absent from", [][2]string{{"a/Snapshot/2024_9.csv", "old"}}, "a/2024_1.csv", "a/Snapshot/2024_9.csv", "old", store.ErrNotExist},
		{"absent from and prefix", nil, "x/2024_1.csv", "x/Snapshot/2024_9.csv", "", store.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			st := open(t)
			for _, o := range tt.existing {
				if from, ok := strings.CutPrefix(o[1], "@"); ok {
					if err := st.Copy(ctx, from, o[0]); err != nil {
						t.Fatal(err)
					}
					continue
				}
				put(t, st, o[0], o[1])
			}
			before := listed(t, st, "")
			err := st.Copy(ctx, tt.from, tt.to)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Copy: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if tt.want == "" {
					absent(t, st, tt.to, "after a failed copy")
				} else {
					holds(t, st, tt.to, tt.want, "after a failed copy")
				}
				if got := listed(t, st, ""); got != before {
					t.Fatalf("a failed copy changed the store: %s, was %s", got, before)
				}
				return
			}
			holds(t, st, tt.to, tt.want, "after the copy")
			holds(t, st, tt.from, tt.want, "after the copy")
			if tt.from == tt.to {
				return
			}
			// Names are independent: deleting from leaves to whole, and
			// replacing to leaves from as it was.
			put(t, st, tt.from, "replaced")
			holds(t, st, tt.to, tt.want, "after replacing from")
			if err := st.Delete(ctx, tt.from); err != nil {
				t.Fatal(err)
			}
			holds(t, st, tt.to, tt.want, "after deleting from")
		})
	}
}

// copyModTime: a copy's ModTime is the time of the copy, not from's, as
// orphan clean-up (package lake) takes an unnamed object's age from it. The
// wait outlasts the one-second ModTime resolution of some object stores.
func copyModTime(t *testing.T, st store.Store) {
	ctx := t.Context()
	put(t, st, "a/2024_1.csv", "rows")
	objs, err := st.List(ctx, "a/2024_1.csv")
	if err != nil || len(objs) != 1 {
		t.Fatalf("List: %v %v", objs, err)
	}
	written := objs[0].ModTime
	time.Sleep(1500 * time.Millisecond)
	if err := st.Copy(ctx, "a/2024_1.csv", "a/Snapshot/2024_9.csv"); err != nil {
		t.Fatal(err)
	}
	objs, err = st.List(ctx, "a/Snapshot/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("List: %v %v", objs, err)
	}
	if copied := objs[0].ModTime; !copied.After(written) {
		t.Fatalf("the copy's ModTime %v is not after the original's %v: it must be the time of the copy", copied, written)
	}
}

// list: prefixes are string prefixes, not folders, and names sort byte by
// byte across what a folder walk would visit in another order.
func list(t *testing.T, st store.Store) {
	for _, n := range []string{
		"account/2024_1.csv", "account/2023_1.csv", "account/Snapshot/2023_1.csv", "accounts/x.csv", "model.json",
		"t/a0", "t/a/b", "t/a.b", "t/a-b", "t/A",
	} {
		put(t, st, n, n)
	}
	tests := []struct{ prefix, want string }{
		{"", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv,accounts/x.csv,model.json,t/A,t/a-b,t/a.b,t/a/b,t/a0"},
		{"account/", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv"},
		{"account", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv,accounts/x.csv"},
		{"account/202", "account/2023_1.csv,account/2024_1.csv"},
		{"t/a", "t/a-b,t/a.b,t/a/b,t/a0"},
		{"missing/", ""},
		{"model.json", "model.json"},
		{"model.json/", ""},
	}
	for _, tt := range tests {
		if got := listed(t, st, tt.prefix); got != tt.want {
			t.Errorf("List(%q) = %s, want %s", tt.prefix, got, tt.want)
		}
	}
}

// listPastAPage lists more objects than one page of S3 (1000) or Azure
// (5000 at most, 1000 by default) holds.
func listPastAPage(t *testing.T, st store.Store) {
	ctx := t.Context()
	const n = 1234
	var want []string
	var wg sync.WaitGroup
	names := make(chan string)
	for range 16 {
		wg.Go(func() {
			for name := range names {
				if err := st.PutIfAbsent(ctx, name, []byte(name)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// Written out of order, so that an unsorted listing shows.
	for i := range n {
		name := fmt.Sprintf("big/%04d.csv", (i*7919)%n)
		want = append(want, name)
		names <- name
	}
	close(names)
	wg.Wait()
	put(t, st, "bigger.csv", "after the prefix")
	slices.Sort(want)
	objs, err := st.List(ctx, "big/")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(Names(objs), ","); !slices.Equal(got, want) {
		t.Fatalf("List(big/): %d objects, want %d sorted", len(got), len(want))
	}
	if objs, err := st.List(ctx, "big/12"); err != nil || len(objs) != 34 {
		t.Fatalf("List(big/12): %d objects (%v), want 34", len(objs), err)
	}
	if objs, err := st.List(ctx, "big"); err != nil || len(objs) != n+1 || objs[n].Name != "bigger.csv" {
		t.Fatalf("List(big): %d objects (%v), want %d ending with bigger.csv", len(objs), err, n+1)
	}
}

// notExist: Open of a name never written, or deleted, fails with ErrNotExist.
func notExist(t *testing.T, st store.Store) {
	absent(t, st, "nope.csv", "in an empty store")
	put(t, st, "account/2024_1.csv", "rows")
	absent(t, st, "account/2023_1.csv", "beside an object")
	absent(t, st, "missing/2023_1.csv", "under an absent prefix")
	absent(t, st, "account", "that is a prefix of an object")
	if err := st.Copy(t.Context(), "account", "copy.csv"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Copy from a prefix of an object: %v, want ErrNotExist", err)
	}
	if _, err := store.ReadAll(t.Context(), st, "nope.csv"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("ReadAll of an absent object: %v", err)
	}
}

// deletes: Delete removes one name; deleting an absent object, under a
// prefix that has objects or none, is not an error.
func deletes(t *testing.T, st store.Store) {
	ctx := t.Context()
	put(t, st, "account/2023_1.csv", "a")
	put(t, st, "account/2024_1.csv", "b")
	if err := st.Delete(ctx, "account/2023_1.csv"); err != nil {
		t.Fatal(err)
	}
	absent(t, st, "account/2023_1.csv", "after Delete")
	holds(t, st, "account/2024_1.csv", "b", "after deleting its neighbour")
	for _, name := range []string{"account/2023_1.csv", "account/2022_1.csv", "missing/x.csv", "account"} {
		if err := st.Delete(ctx, name); err != nil {
			t.Fatalf("deleting the absent %s: %v", name, err)
		}
	}
	if err := st.Delete(ctx, "account/2024_1.csv"); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, st, ""); got != "" {
		t.Fatalf("List after deleting everything: %s", got)
	}
	// The prefix of deleted objects takes new ones.
	put(t, st, "account/2025_1.csv", "c")
	holds(t, st, "account/2025_1.csv", "c", "after writing under an emptied prefix")
}

// invalidNames: every operation rejects a name that is not a clean relative
// slash path, and writes nothing.
func invalidNames(t *testing.T, st store.Store) {
	ctx := t.Context()
	put(t, st, "ok.csv", "ok")
	for _, n := range []string{"../escape", "/abs", "a//b", "a/../../b", "", ".", "a/./b", "a/"} {
		if w, err := st.Create(ctx, n); err == nil {
			_ = w.Abort()
			t.Errorf("Create(%q) accepted", n)
		}
		if err := st.PutIfAbsent(ctx, n, nil); err == nil {
			t.Errorf("PutIfAbsent(%q) accepted", n)
		}
		if r, err := st.Open(ctx, n); err == nil {
			r.Close()
			t.Errorf("Open(%q) accepted", n)
		}
		if err := st.Delete(ctx, n); err == nil {
			t.Errorf("Delete(%q) accepted", n)
		}
		if err := st.Copy(ctx, "ok.csv", n); err == nil {
			t.Errorf("Copy to %q accepted", n)
		}
		if err := st.Copy(ctx, n, "ok.csv"); err == nil {
			t.Errorf("Copy from %q accepted", n)
		}
	}
	if got := listed(t, st, ""); got != "ok.csv" {
		t.Fatalf("List after rejected names: %s", got)
	}
}

// location: Location("") names the store, and every object's location
// starts with it.
func location(t *testing.T, st store.Store) {
	root := st.Location("")
	if root == "" {
		t.Fatal(`Location("") is empty`)
	}
	for _, name := range []string{"model.json", "account/2024_1.csv"} {
		if loc := st.Location(name); !strings.HasPrefix(loc, root) || !strings.HasSuffix(loc, name) || loc == root {
			t.Errorf("Location(%q) = %q, not under %q", name, loc, root)
		}
	}
}
