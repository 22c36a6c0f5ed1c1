package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

func newLocal(t *testing.T) *Store {
	t.Helper()
	l, err := New(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func names(objs []store.Object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return strings.Join(out, ",")
}

func TestCreateIsAtomic(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	if err := store.Put(ctx, l, "a/b.csv", []byte("old")); err != nil {
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
	if got, _ := store.ReadAll(ctx, l, "a/b.csv"); string(got) != "old" {
		t.Fatalf("before Close: %q", got)
	}
	if objs, _ := l.List(ctx, "a/"); names(objs) != "a/b.csv" {
		t.Fatalf("List during a write: %s", names(objs))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.ReadAll(ctx, l, "a/b.csv"); string(got) != "new" {
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
	if got, _ := store.ReadAll(ctx, l, "a/b.csv"); string(got) != "new" {
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
	if !errors.Is(err, store.ErrExist) {
		t.Fatalf("want store.ErrExist, got %v", err)
	}
	if got, _ := store.ReadAll(ctx, l, "log/1.json"); string(got) != "first" {
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
			} else if !errors.Is(err, store.ErrExist) {
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
		if err := store.Put(ctx, l, n, []byte(n)); err != nil {
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
	if _, err := l.Open(ctx, "nope.csv"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Open of an absent object: %v", err)
	}
	if err := l.Delete(ctx, "account/2023_1.csv"); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "account/2023_1.csv"); err != nil {
		t.Fatalf("deleting an absent object: %v", err)
	}
	if _, err := l.Open(ctx, "account/2023_1.csv"); !errors.Is(err, store.ErrNotExist) {
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
		if err := l.Copy(ctx, "ok.csv", n); err == nil {
			t.Errorf("Copy to %q accepted", n)
		}
		if err := l.Copy(ctx, n, "ok.csv"); err == nil {
			t.Errorf("Copy from %q accepted", n)
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

func TestCopy(t *testing.T) {
	// Each case runs with hard links, and with a link function that fails
	// as file systems refusing hard links do, which takes the byte copy.
	links := []struct {
		name   string
		refuse error
	}{
		{"link", nil},
		{"EPERM", syscall.EPERM},
		{"EXDEV", syscall.EXDEV},
		{"EMLINK", syscall.EMLINK},
		{"ENOTSUP", syscall.ENOTSUP},
	}
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
		{"absent from and folder", nil, "x/2024_1.csv", "x/Snapshot/2024_9.csv", "", store.ErrNotExist},
	}
	for _, lk := range links {
		for _, tt := range tests {
			t.Run(lk.name+"/"+tt.name, func(t *testing.T) {
				ctx := t.Context()
				l := newLocal(t)
				if lk.refuse != nil {
					l.link = func(oldname, newname string) error {
						return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: lk.refuse}
					}
				}
				old := time.Now().Add(-time.Hour)
				for _, o := range tt.existing {
					name, data := o[0], o[1]
					if from, ok := strings.CutPrefix(data, "@"); ok {
						if err := l.Copy(ctx, from, name); err != nil {
							t.Fatal(err)
						}
						continue
					}
					if err := store.Put(ctx, l, name, []byte(data)); err != nil {
						t.Fatal(err)
					}
					if err := os.Chtimes(l.path(name), old, old); err != nil {
						t.Fatal(err)
					}
				}
				err := l.Copy(ctx, tt.from, tt.to)
				if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
					t.Fatalf("Copy: %v, want %v", err, tt.wantErr)
				}
				got, rerr := store.ReadAll(ctx, l, tt.to)
				switch {
				case tt.wantErr != nil && tt.want == "":
					if !errors.Is(rerr, store.ErrNotExist) {
						t.Fatalf("a failed copy made to: %q (%v)", got, rerr)
					}
				case rerr != nil || string(got) != tt.want:
					t.Fatalf("to holds %q (%v), want %q", got, rerr, tt.want)
				}
				if tt.wantErr != nil {
					return
				}
				objs, err := l.List(ctx, tt.to)
				if err != nil || len(objs) != 1 {
					t.Fatalf("List(%s): %v %v", tt.to, objs, err)
				}
				// A fresh ModTime: orphan clean-up must not take a copy not
				// yet committed for an abandoned object.
				if age := time.Since(objs[0].ModTime); age > time.Minute {
					t.Errorf("the copy is %v old", age)
				}
				fi, err := os.Stat(l.path(tt.from))
				if err != nil {
					t.Fatal(err)
				}
				ti, err := os.Stat(l.path(tt.to))
				if err != nil {
					t.Fatal(err)
				}
				if shared := os.SameFile(fi, ti); shared != (lk.refuse == nil || tt.from == tt.to) {
					t.Errorf("from and to share a file: %v", shared)
				}
				checkNoStaging(t, l)
				if tt.from == tt.to {
					return
				}
				// Names are independent: deleting from leaves to whole.
				if err := l.Delete(ctx, tt.from); err != nil {
					t.Fatal(err)
				}
				if got, err := store.ReadAll(ctx, l, tt.to); err != nil || string(got) != tt.want {
					t.Fatalf("after deleting from, to holds %q (%v), want %q", got, err, tt.want)
				}
			})
		}
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
	l.link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EIO}
	}
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
	err := filepath.WalkDir(l.Root(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("staging file left: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
