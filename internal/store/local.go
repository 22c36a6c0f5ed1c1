package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Local is a Store in a local directory. It uses rename and hard links
// internally to publish objects atomically; the protocol above it does not
// depend on either.
type Local struct {
	root string
}

// NewLocal returns the store rooted at dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("lake folder %s: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

// Root returns the absolute directory of the store.
func (l *Local) Root() string { return l.root }

func (l *Local) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

// check rejects names that are not clean relative slash paths: "..", an
// absolute path or an empty element would reach outside the lake folder.
func check(name string) error {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("object name %q: must be a relative slash-separated path without \".\" or \"..\" elements", name)
	}
	return nil
}

// tempName is where an object is staged before it is published. Names
// starting with ".tmp-" are never objects: List skips them and orphan
// clean-up may remove them.
func (l *Local) temp(name string) (*os.File, error) {
	dir := filepath.Dir(l.path(name))
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(name)+"-")
		// Delete removes directories it empties; one may vanish between
		// MkdirAll and CreateTemp. The staged file then keeps it alive.
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		return f, err
	}
}

type localWriter struct {
	f    *os.File
	buf  *bufio.Writer
	dest string
}

func (w *localWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *localWriter) Close() error {
	if err := w.buf.Flush(); err != nil {
		_ = w.Abort()
		return err
	}
	if err := w.f.Sync(); err != nil {
		_ = w.Abort()
		return err
	}
	if err := w.f.Close(); err != nil {
		_ = os.Remove(w.f.Name())
		return err
	}
	if err := os.Rename(w.f.Name(), w.dest); err != nil {
		_ = os.Remove(w.f.Name())
		return err
	}
	return syncDir(filepath.Dir(w.dest))
}

func (w *localWriter) Abort() error {
	_ = w.f.Close()
	return os.Remove(w.f.Name())
}

// Create implements Store.
func (l *Local) Create(_ context.Context, name string) (Writer, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	f, err := l.temp(name)
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, buf: bufio.NewWriterSize(f, 1<<20), dest: l.path(name)}, nil
}

// PutIfAbsent implements Store: the object is staged, then hard-linked to its
// name, which fails if the name is taken.
func (l *Local) PutIfAbsent(_ context.Context, name string, data []byte) error {
	if err := check(name); err != nil {
		return err
	}
	f, err := l.temp(name)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, l.path(name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, ErrExist)
		}
		return err
	}
	return syncDir(filepath.Dir(l.path(name)))
}

// Open implements Store.
func (l *Local) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotExist)
	}
	return f, err
}

// List implements Store.
func (l *Local) List(_ context.Context, prefix string) ([]Object, error) {
	// Walk only the directory that holds the prefix.
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	var out []Object
	err := filepath.WalkDir(l.path(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Object{Name: name, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, name string) error {
	if err := check(name); err != nil {
		return err
	}
	err := os.Remove(l.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Object stores have no directories: remove the ones this delete
	// emptied, so that a removed table leaves no folder behind. Removing
	// a directory that is not empty fails, which ends the walk.
	for dir := filepath.Dir(l.path(name)); dir != l.root && strings.HasPrefix(dir, l.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// CleanTemp removes the staging files (".tmp-*") older than age that
// writers killed before Close or Abort left behind, and returns how many it
// removed. Only call it with an age no write takes.
func (l *Local) CleanTemp(_ context.Context, age time.Duration) (int, error) {
	cutoff := time.Now().Add(-age)
	n := 0
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("removing staging files under %s: %w", l.root, err)
	}
	return n, nil
}

// Location implements Store.
func (l *Local) Location(name string) string { return l.path(name) }

// syncDir makes a directory entry durable, so that a published object
// survives a power loss as well as a kill -9.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
