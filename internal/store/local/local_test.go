package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/storetest"
)

func newLocal(t *testing.T) *Store {
	t.Helper()
	l, err := New(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// refusals are the errors of file systems that refuse hard links, where
// Copy copies the bytes instead.
var refusals = []struct {
	name string
	err  error
}{
	{"EPERM", syscall.EPERM},
	{"EXDEV", syscall.EXDEV},
	{"EMLINK", syscall.EMLINK},
	{"ENOTSUP", syscall.ENOTSUP},
}

// refuse makes l's hard links fail with err.
func refuse(l *Store, err error) {
	l.link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
}

// TestContract runs the store contract; Copy also through the byte copy of
// each refusal. Every test leaves no staging file behind.
func TestContract(t *testing.T) {
	open := func(refusal error) storetest.Open {
		return func(t *testing.T) store.Store {
			l := newLocal(t)
			if refusal != nil {
				refuse(l, refusal)
			}
			t.Cleanup(func() { checkNoStaging(t, l) })
			return l
		}
	}
	storetest.Run(t, open(nil))
	// A batch is a store.Store and keeps the whole contract.
	t.Run("Batch", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			l := newLocal(t)
			b := l.Batch()
			t.Cleanup(func() {
				if err := b.Sync(context.Background()); err != nil {
					t.Error(err)
				}
				checkNoStaging(t, l)
			})
			return b
		})
	})
	for _, r := range refusals {
		t.Run("Copy/"+r.name, func(t *testing.T) { storetest.RunCopy(t, open(r.err)) })
	}
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		location, root string
		wantErr        string
	}{
		{dir + "/a", dir + "/a", ""},
		{"file://" + dir + "/b", dir + "/b", ""},
		{"file://localhost" + dir + "/my%20lake", dir + "/my lake", ""},
		{"file://nas" + dir, "", `not on the host "nas"`},
		{"file://" + dir + "?x=1", "", "without a query"},
		{"file:///", "/", ""},
	}
	for _, tt := range tests {
		st, err := store.Open(t.Context(), tt.location)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open(%s): %v, want an error saying %q", tt.location, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%s): %v", tt.location, err)
			continue
		}
		if got := st.Location(""); got != tt.root {
			t.Errorf("Open(%s) is rooted at %s, want %s", tt.location, got, tt.root)
		}
	}
	// A relative path is relative to the working directory.
	t.Chdir(dir)
	st, err := store.Open(t.Context(), "rel/lake")
	if err != nil || st.Location("model.json") != filepath.Join(dir, "rel/lake/model.json") {
		t.Fatalf("relative path: %v at %s", err, st.Location(""))
	}
}

// TestStagingIsInvisible: a write in progress and an aborted one leave no
// object, and after Abort no staging file in the folder either.
func TestStagingIsInvisible(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	w, err := l.Create(ctx, "a/b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(l.root, "a"))
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), ".tmp-") {
		t.Fatalf("during a write the folder holds %v, want one staging file", entries)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	checkNoStaging(t, l)
}

// TestNoEscape: a rejected name writes nothing outside the lake folder.
func TestNoEscape(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	if err := store.Put(ctx, l, "../escape", []byte("x")); err == nil {
		t.Fatal("Put(../escape) accepted")
	}
	if err := l.PutIfAbsent(ctx, "../escape", []byte("x")); err == nil {
		t.Fatal("PutIfAbsent(../escape) accepted")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(l.root), "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a write escaped the lake folder")
	}
	if loc := l.Location("model.json"); loc != filepath.Join(l.root, "model.json") {
		t.Fatalf("Location %s", loc)
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
	if objs, _ := l.List(context.Background(), "t/"); storetest.Names(objs) != "t/b.csv" {
		t.Fatalf("List: %s", storetest.Names(objs))
	}
}

// TestCopyShares: Copy hard-links where it can (from and to then name one
// file) and copies the bytes where the file system refuses; either way the
// copy is fresh, though from was written an hour ago.
func TestCopyShares(t *testing.T) {
	cases := append([]struct {
		name string
		err  error
	}{{"link", nil}}, refusals...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			l := newLocal(t)
			if c.err != nil {
				refuse(l, c.err)
			}
			if err := store.Put(ctx, l, "a/2024_1.csv", []byte("rows")); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(l.path("a/2024_1.csv"), old, old); err != nil {
				t.Fatal(err)
			}
			if err := l.Copy(ctx, "a/2024_1.csv", "a/Snapshot/2024_9.csv"); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(l.path("a/2024_1.csv"))
			if err != nil {
				t.Fatal(err)
			}
			ti, err := os.Stat(l.path("a/Snapshot/2024_9.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if shared := os.SameFile(fi, ti); shared != (c.err == nil) {
				t.Errorf("from and to share a file: %v", shared)
			}
			if age := time.Since(ti.ModTime()); age > time.Minute {
				t.Errorf("the copy is %v old", age)
			}
			checkNoStaging(t, l)
		})
	}
}

// TestCopyFails: a link error that is no refusal is reported, not hidden by
// a byte copy, and leaves to as it was.
func TestCopyFails(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	for name, data := range map[string]string{"a/1.csv": "new", "a/2.csv": "old"} {
		if err := store.Put(ctx, l, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	refuse(l, syscall.EIO)
	err := l.Copy(ctx, "a/1.csv", "a/2.csv")
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "copying a/1.csv to a/2.csv") {
		t.Fatalf("Copy: %v", err)
	}
	if got, _ := store.ReadAll(ctx, l, "a/2.csv"); string(got) != "old" {
		t.Fatalf("a failed copy changed to: %q", got)
	}
	checkNoStaging(t, l)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Copy(cancelled, "a/1.csv", "a/3.csv"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy with a cancelled context: %v", err)
	}
}

// checkNoStaging fails if any staging file is left in the lake folder.
func checkNoStaging(t *testing.T, l *Store) {
	t.Helper()
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("staging file left: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
