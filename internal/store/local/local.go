// Package local is the store.Store of a folder on a local file system: the
// lake of a profile's lake.path, a file:// lake.url or a --lake DIR flag. It
// registers the scheme "file" with package store; a plain path opens it too.
// It may import only the standard library and package store.
package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Store is a store.Store in a local directory. It uses rename and hard links
// internally to publish objects atomically; the protocol above it does not
// depend on either.
type Store struct {
	root string
	// link is os.Link. Tests replace it to take the byte-copy path of file
	// systems that refuse hard links.
	link func(oldname, newname string) error
	// pending is nil for the store itself, whose writes sync their folder
	// before they return; a Batch's collects the folders to sync instead.
	pending *pendingDirs
}

var _ store.Batcher = (*Store)(nil)

func init() { store.Register("file", open) }

// open opens the folder of a file URL: file:///srv/lake, file://localhost/srv/lake,
// or a plain path (store.Parse makes it a file URL).
func open(_ context.Context, u *url.URL) (store.Store, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("lake %s: a file URL names a folder on this machine (file:///srv/lake), not on the host %q", u.Redacted(), u.Host)
	}
	if u.Opaque != "" || u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("lake %s: a file URL is file:///absolute/folder, without a query or a fragment", u.Redacted())
	}
	return New(u.Path)
}

// New returns the store rooted at dir, creating dir if needed.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("lake folder %s: %w", abs, err)
	}
	return &Store{root: abs, link: os.Link}, nil
}

// Root returns the absolute directory of the store, for callers that hold a
// local store and work on its folder (tests, the benchmark tool); messages
// name a lake by store.Store.Location(""), which is the same for a folder.
func (l *Store) Root() string { return l.root }

func (l *Store) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

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
func (l *Store) temp(name string) (*os.File, error) {
	dir := filepath.Dir(l.path(name))
	for attempt := 0; ; attempt++ {
		if err := l.mkdirs(dir); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(name)+"-")
		// Delete removes directories it empties; one may vanish between
		// mkdirs and CreateTemp. The staged file then keeps it alive.
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		return f, err
	}
}

// writeBufs recycles the 1 MiB write buffers of Create: allocating one per
// object cost 90 % of the bytes an initial sync of 300 small tables
// allocated, and clearing them 11 % of its CPU (issue #16).
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1<<20) }}

// release returns w's buffer to writeBufs; w must not write again.
func (w *localWriter) release() {
	if w.buf != nil {
		w.buf.Reset(nil)
		writeBufs.Put(w.buf)
		w.buf = nil
	}
}

type localWriter struct {
	l    *Store
	f    *os.File
	buf  *bufio.Writer
	dest string
	n    int64
}

func (w *localWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *localWriter) Close() error {
	err := w.buf.Flush()
	w.release()
	if err != nil {
		_ = w.Abort()
		return err
	}
	if err := w.l.publish(w.f, w.dest); err != nil {
		return err
	}
	counters.written.Add(w.n)
	return nil
}

// publish makes the staged file f durable and renames it to dest, whose
// folder it syncs (or, in a batch, leaves to Sync); on failure it removes f.
func (l *Store) publish(f *os.File, dest string) error {
	counters.fsyncs.Add(1)
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return l.syncDir(filepath.Dir(dest))
}

func (w *localWriter) Abort() error {
	w.release()
	_ = w.f.Close()
	return os.Remove(w.f.Name())
}

// Create implements store.Store.
func (l *Store) Create(_ context.Context, name string) (store.Writer, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	counters.creates.Add(1)
	f, err := l.temp(name)
	if err != nil {
		return nil, err
	}
	buf := writeBufs.Get().(*bufio.Writer)
	buf.Reset(f)
	return &localWriter{l: l, f: f, buf: buf, dest: l.path(name)}, nil
}

// PutIfAbsent implements store.Store: the object is staged, then hard-linked to its
// name, which fails if the name is taken.
func (l *Store) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := check(name); err != nil {
		return err
	}
	if l.pending != nil {
		// Durable before it returns, in a batch too (store.Batch): the
		// commit arbiter's winner must not vanish in a power loss.
		return (&Store{root: l.root, link: l.link}).PutIfAbsent(ctx, name, data)
	}
	counters.putIfAbsents.Add(1)
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
	counters.fsyncs.Add(1)
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, l.path(name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, store.ErrExist)
		}
		return err
	}
	counters.written.Add(int64(len(data)))
	return syncDir(filepath.Dir(l.path(name)))
}

// Copy implements store.Store with a hard link: from and to then name one file.
// That is safe because no object is modified in place (Create replaces by
// rename) and Delete removes a name, not the file. Where the file system
// refuses the link (another device, no hard links, too many links, not
// permitted) Copy copies the bytes instead.
func (l *Store) Copy(ctx context.Context, from, to string) error {
	if err := check(from); err != nil {
		return err
	}
	if err := check(to); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	counters.copies.Add(1)
	err := l.linkCopy(from, to)
	if refused(err) {
		err = l.byteCopy(from, to)
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", from, to, err)
	}
	return nil
}

// linkCopy publishes a hard link to from's file as to: linked to a staging
// name in to's folder, renamed over to, the folder synced.
func (l *Store) linkCopy(from, to string) error {
	src, dest := l.path(from), l.path(to)
	// A link shares from's inode and so its ModTime, an old time that
	// orphan clean-up would take for an abandoned object's. Touching the
	// file before linking gives the staging name and to a fresh one (from's
	// too, which nothing depends on).
	now := time.Now()
	if err := os.Chtimes(src, now, now); err != nil {
		return absent(from, err)
	}
	dir := filepath.Dir(dest)
	var tmp string
	for attempt := 0; ; attempt++ {
		if err := l.mkdirs(dir); err != nil {
			return err
		}
		tmp = filepath.Join(dir, fmt.Sprintf(".tmp-%s-%016x", filepath.Base(dest), rand.Uint64()))
		err := l.link(src, tmp)
		if err == nil {
			break
		}
		if attempt >= 3 {
			return err
		}
		switch {
		case errors.Is(err, fs.ErrExist):
			// Another staging file drew the same name.
		case errors.Is(err, fs.ErrNotExist):
			// Either from was deleted, or Delete removed the folder it
			// emptied (as in temp).
			if _, serr := os.Lstat(src); serr != nil {
				return absent(from, serr)
			}
		default:
			return err
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// When to already named the same file, rename leaves both names as
	// they were (POSIX): the staging name must go. Otherwise it is gone.
	_ = os.Remove(tmp)
	return l.syncDir(dir)
}

// byteCopy writes from's bytes as to, as Create and Close do. ReadFrom uses
// copy_file_range where the kernel has it, so the bytes may not even pass
// through lakelink.
func (l *Store) byteCopy(from, to string) error {
	src, err := l.openFile(from)
	if err != nil {
		return absent(from, err)
	}
	defer src.Close()
	f, err := l.temp(to)
	if err != nil {
		return err
	}
	n, err := f.ReadFrom(src)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	counters.written.Add(n)
	return l.publish(f, l.path(to))
}

// refused reports whether err is a file system refusing a hard link (or
// the touch before it) where a byte copy can still succeed.
func refused(err error) bool {
	for _, e := range []syscall.Errno{syscall.EPERM, syscall.EXDEV, syscall.EMLINK, syscall.ENOTSUP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// absent wraps err as store.ErrNotExist of the object name when the file is missing.
func absent(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, store.ErrNotExist)
	}
	return err
}

// Open implements store.Store.
func (l *Store) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	counters.opens.Add(1)
	f, err := l.openFile(name)
	if err != nil {
		return nil, absent(name, err)
	}
	return f, nil
}

// openFile opens the file of the object name. A folder is the prefix of
// other objects' names, not an object: opening one fails with fs.ErrNotExist,
// as an object store answers for a name no object has.
func (l *Store) openFile(name string) (*os.File, error) {
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, err
	}
	if info, err := f.Stat(); err != nil || info.IsDir() {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, err
	}
	return f, nil
}

// List implements store.Store.
func (l *Store) List(_ context.Context, prefix string) ([]store.Object, error) {
	// Walk only the directory that holds the prefix.
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	var out []store.Object
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
		out = append(out, store.Object{Name: name, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	counters.lists.Add(1)
	counters.listed.Add(int64(len(out)))
	return out, err
}

// Delete implements store.Store.
func (l *Store) Delete(_ context.Context, name string) error {
	if err := check(name); err != nil {
		return err
	}
	counters.deletes.Add(1)
	err := os.Remove(l.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		// A folder that holds objects is no object: name is absent.
		if info, serr := os.Lstat(l.path(name)); serr == nil && info.IsDir() {
			return nil
		}
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
func (l *Store) CleanTemp(_ context.Context, age time.Duration) (int, error) {
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

// Location implements store.Store.
func (l *Store) Location(name string) string { return l.path(name) }

// mkdirs makes the folder dir and the missing ones above it, each made
// durable in its parent as syncDir makes an object (objects in a folder
// whose own entry is lost in a power loss are lost with it).
func (l *Store) mkdirs(dir string) error {
	if info, err := os.Stat(dir); err == nil {
		if !info.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := l.mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Made by another writer, which syncs its parent.
			return nil
		}
		return err
	}
	return l.syncDir(parent)
}

// syncDir makes the entries of folder dir durable now, or, in a batch, by
// the batch's Sync.
func (l *Store) syncDir(dir string) error {
	if l.pending != nil {
		l.pending.add(dir)
		return nil
	}
	return syncDir(dir)
}

// syncDir makes a directory entry durable, so that a published object
// survives a power loss as well as a kill -9.
func syncDir(dir string) error {
	counters.fsyncs.Add(1)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// pendingDirs are the folders a batch published into and has not synced.
type pendingDirs struct {
	mu   sync.Mutex
	dirs map[string]bool
}

func (p *pendingDirs) add(dir string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirs == nil {
		p.dirs = map[string]bool{}
	}
	p.dirs[dir] = true
}

// take returns the pending folders, deepest first (a folder's entry in its
// parent is synced after the folder's own entries), and forgets them.
func (p *pendingDirs) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	p.dirs = nil
	sort.Slice(dirs, func(i, j int) bool {
		if di, dj := strings.Count(dirs[i], string(filepath.Separator)), strings.Count(dirs[j], string(filepath.Separator)); di != dj {
			return di > dj
		}
		return dirs[i] < dirs[j]
	})
	return dirs
}

// Batch implements store.Batcher: the batch's Create and Copy sync each
// file as the store's do, but leave its folder to Sync, which syncs each
// folder once however many objects went into it. A stage of seven
// partition files then costs eight fsyncs instead of fourteen.
func (l *Store) Batch() store.Batch {
	return &batch{Store: &Store{root: l.root, link: l.link, pending: &pendingDirs{}}}
}

// batch is the store.Batch of a Store.
type batch struct{ *Store }

// Sync implements store.Batch. A folder removed since (Delete removes the
// folders it empties) holds none of the batch's objects any more and is
// skipped. On an error the folders not synced stay pending.
func (b *batch) Sync(ctx context.Context) error {
	dirs := b.pending.take()
	for i, dir := range dirs {
		if err := ctx.Err(); err != nil {
			b.requeue(dirs[i:])
			return err
		}
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.requeue(dirs[i:])
			return fmt.Errorf("syncing folder %s of the lake: %w", dir, err)
		}
	}
	return nil
}

func (b *batch) requeue(dirs []string) {
	for _, d := range dirs {
		b.pending.add(d)
	}
}
