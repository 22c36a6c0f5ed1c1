package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newLocal(t *testing.T) *Local {
	t.Helper()
	l, err := NewLocal(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func names(objs []Object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return strings.Join(out, ",")
}

func TestCreateIsAtomic(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	if err := Put(ctx, l, "a/b.csv", []byte("old")); err != nil {
		t.Fatal(err)
	}
	w, err := l.Create(ctx, "a/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	// Before Close readers see the old object, and List no staging file.
	if got, _ := ReadAll(ctx, l, "a/b.csv"); string(got) != "old" {
		t.Fatalf("before Close: %q", got)
	}
	if objs, _ := l.List(ctx, "a/"); names(objs) != "a/b.csv" {
		t.Fatalf("List during a write: %s", names(objs))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadAll(ctx, l, "a/b.csv"); string(got) != "new" {
		t.Fatalf("after Close: %q", got)
	}
	// Abort leaves the object as it was and no staging file.
	w, err = l.Create(ctx, "a/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("discarded")); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadAll(ctx, l, "a/b.csv"); string(got) != "new" {
		t.Fatalf("after Abort: %q", got)
	}
	entries, _ := os.ReadDir(filepath.Join(l.Root(), "a"))
	if len(entries) != 1 {
		t.Fatalf("staging files left: %v", entries)
	}
}

func TestPutIfAbsent(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	if err := l.PutIfAbsent(ctx, "log/1.json", []byte("first")); err != nil {
		t.Fatal(err)
	}
	err := l.PutIfAbsent(ctx, "log/1.json", []byte("second"))
	if !errors.Is(err, ErrExist) {
		t.Fatalf("want ErrExist, got %v", err)
	}
	if got, _ := ReadAll(ctx, l, "log/1.json"); string(got) != "first" {
		t.Fatalf("the loser replaced the object: %q", got)
	}
	// Many writers race for one name: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 16 {
		wg.Go(func() {
			err := l.PutIfAbsent(ctx, "log/2.json", []byte(fmt.Sprint(i)))
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrExist) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won", wins)
	}
	if objs, _ := l.List(ctx, "log/"); names(objs) != "log/1.json,log/2.json" {
		t.Fatalf("List: %s", names(objs))
	}
}

func TestListOpenDelete(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	for _, n := range []string{"account/2024_1.csv", "account/2023_1.csv", "account/Snapshot/2023_1.csv", "accounts/x.csv", "model.json"} {
		if err := Put(ctx, l, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ prefix, want string }{
		{"", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv,accounts/x.csv,model.json"},
		{"account/", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv"},
		{"account", "account/2023_1.csv,account/2024_1.csv,account/Snapshot/2023_1.csv,accounts/x.csv"},
		{"account/202", "account/2023_1.csv,account/2024_1.csv"},
		{"missing/", ""},
		{"model.json", "model.json"},
	}
	for _, tt := range tests {
		objs, err := l.List(ctx, tt.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if names(objs) != tt.want {
			t.Errorf("List(%q) = %s, want %s", tt.prefix, names(objs), tt.want)
		}
	}
	if _, err := l.Open(ctx, "nope.csv"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Open of an absent object: %v", err)
	}
	if err := l.Delete(ctx, "account/2023_1.csv"); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "account/2023_1.csv"); err != nil {
		t.Fatalf("deleting an absent object: %v", err)
	}
	if _, err := l.Open(ctx, "account/2023_1.csv"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Open after Delete: %v", err)
	}
	if loc := l.Location("model.json"); loc != filepath.Join(l.Root(), "model.json") {
		t.Fatalf("Location %s", loc)
	}
}

func TestInvalidNames(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	for _, n := range []string{"../escape", "/abs", "a//b", "a/../../b", "", ".", "a/./b"} {
		if _, err := l.Create(ctx, n); err == nil {
			t.Errorf("Create(%q) accepted", n)
		}
		if err := l.PutIfAbsent(ctx, n, nil); err == nil {
			t.Errorf("PutIfAbsent(%q) accepted", n)
		}
		if _, err := l.Open(ctx, n); err == nil {
			t.Errorf("Open(%q) accepted", n)
		}
		if err := l.Delete(ctx, n); err == nil {
			t.Errorf("Delete(%q) accepted", n)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(l.Root()), "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a write escaped the lake folder")
	}
}

func TestCleanTemp(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	w, err := l.Create(ctx, "t/a.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// A writer killed now would leave its staging file: simulate by never
	// closing w, and age the file.
	lw := w.(*localWriter)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(lw.f.Name(), old, old); err != nil {
		t.Fatal(err)
	}
	fresh, err := l.Create(ctx, "t/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.CleanTemp(ctx, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("CleanTemp removed %d (%v), want 1", n, err)
	}
	if err := fresh.Close(); err != nil {
		t.Fatalf("a fresh write was disturbed: %v", err)
	}
	if err := lw.f.Close(); err != nil {
		t.Fatal(err)
	}
	if objs, _ := l.List(context.Background(), "t/"); names(objs) != "t/b.csv" {
		t.Fatalf("List: %s", names(objs))
	}
}
