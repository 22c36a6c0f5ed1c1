package sqldb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/proc"
)

// The Parquet cache holds a typed Parquet copy of each partition and
// snapshot file the views read, so that a query scans Parquet instead of
// parsing CSV again. It is safe because a committed lake file never changes
// (DESIGN decision 3): an entry is keyed by the file's path, its size and
// the conversion (the table's column layout), so a different file under the
// same name, or the same file under a grown layout, has another key and a
// stale entry is never read. Conversion runs in one background worker,
// never inside Query; until an entry is ready the view reads the CSV file,
// and any cache failure is logged and the CSV file used.

// DefaultCacheLimit bounds the cache directory when Options.CacheLimit is 0.
const DefaultCacheLimit = 2 << 30

// cacheVersion is part of every key: bump it when the Parquet content
// changes for the same conversion SQL, so old entries are never read.
const cacheVersion = "lakelink-parquet-1"

// cacheGrace is how long an entry that the committed state no longer names
// is kept: another process (or a query of an older commit) may still read it.
const cacheGrace = time.Minute

// staleTemp is the age after which a temporary file of an interrupted
// conversion (of any process) is removed.
const staleTemp = time.Hour

// entryName matches the name of an entry in error messages and listings.
var entryName = regexp.MustCompile(`([0-9a-f]{40})\.parquet`)

// job is one file to convert.
type job struct {
	key  string
	rel  string // path relative to the lake root, for messages
	csv  string // what read_csv reads
	size int64
	cols []column
}

// cache is the Parquet cache of one lake database.
type cache struct {
	dir   string
	root  string // see newCache
	limit int64
	log   *slog.Logger
	sql   *sql.DB

	mu      sync.Mutex
	grace   time.Duration   // cacheGrace; tests shorten it
	ready   map[string]bool // key -> entry verified and usable
	failed  map[string]bool // key -> conversion failed in this process; not retried
	dropped map[string]int  // key -> times its entry was found damaged
	pending map[string]bool
	queue   []job
	live    map[string]bool // keys the latest refreshed state names
	swept   bool            // the directory was swept since live last changed
	size    int64           // bytes in the directory at the last sweep, plus conversions since
	gen     int64           // counts changes of ready, so refresh knows to replan
	// fullLogged: errCacheFull was logged; it is logged again only after
	// the cache had room.
	fullLogged bool
	wake       chan struct{}
	done       chan struct{}
	cancel     context.CancelFunc
}

// newCache starts the cache in dir. root is the lake root when dir is its
// DefaultCacheDir: the directory then records it, and the caches of lakes
// that no longer exist are removed.
func newCache(db *sql.DB, dir string, limit int64, log *slog.Logger, root string) *cache {
	if limit <= 0 {
		limit = DefaultCacheLimit
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &cache{
		dir: dir, root: root, limit: limit, grace: cacheGrace, log: log, sql: db,
		ready: map[string]bool{}, failed: map[string]bool{}, dropped: map[string]int{}, pending: map[string]bool{}, live: map[string]bool{},
		// Nothing is swept before setLive names the live entries: with an
		// empty set the first sweep would evict a warm cache.
		swept: true,
		wake:  make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel,
	}
	go c.run(ctx)
	return c
}

// close stops the worker, interrupting a running conversion (its temporary
// file is removed).
func (c *cache) close() {
	c.cancel()
	<-c.done
}

// cacheKey names the entry of the file rel of size bytes read with cols.
func cacheKey(rel string, size int64, cols []column) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", cacheVersion, rel, size, convertList(cols))
	return hex.EncodeToString(h.Sum(nil))[:40]
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, key+".parquet") }

// lookup returns the key of the file rel at loc and, when its entry is
// ready, the entry's path; otherwise it queues the conversion and returns
// no path. It never reads the file, only its size; a file it cannot stat
// has no key.
func (c *cache) lookup(rel, loc string, cols []column) (string, string) {
	fi, err := os.Stat(loc)
	if err != nil || !fi.Mode().IsRegular() {
		// Not a local file (a store with URLs) or gone: the view reads it as it is.
		return "", ""
	}
	key := cacheKey(rel, fi.Size(), cols)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready[key] {
		return key, c.path(key)
	}
	if !c.failed[key] && !c.pending[key] {
		c.pending[key] = true
		c.queue = append(c.queue, job{key: key, rel: rel, csv: loc, size: fi.Size(), cols: cols})
		c.signal()
	}
	return key, ""
}

// setLive records the keys the latest state names; entries outside it are
// evicted after the grace period.
func (c *cache) setLive(keys map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = keys
	c.swept = false
	// Failures are remembered only while the state names the file, so the
	// set stays bounded in a long-running process.
	maps.DeleteFunc(c.failed, func(key string, _ bool) bool { return !keys[key] })
	maps.DeleteFunc(c.dropped, func(key string, _ int) bool { return !keys[key] })
	// Conversions of files the state no longer names are dropped.
	c.queue = slices.DeleteFunc(c.queue, func(j job) bool {
		if keys[j.key] {
			return false
		}
		delete(c.pending, j.key)
		return true
	})
	c.signal()
}

// idle reports whether no conversion is queued or running.
func (c *cache) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) == 0
}

// generation changes whenever an entry becomes ready or is dropped.
func (c *cache) generation() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// blame drops the entries an error message names: a cache file that DuckDB
// cannot read (corrupted or deleted behind the process's back) must not
// fail queries. It reports whether it dropped any.
func (c *cache) blame(err error) bool {
	if err == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dropped := false
	for _, m := range entryName.FindAllStringSubmatch(err.Error(), -1) {
		key := m[1]
		if !c.ready[key] {
			continue
		}
		c.log.Warn("lake database: a Parquet cache file cannot be read; using the CSV file", "cache", c.path(key), "err", err)
		c.drop(key)
		dropped = true
	}
	return dropped
}

// suspectErrors start the messages of DuckDB errors that a damaged cache
// file can cause without naming it (a corrupted page: "Invalid Error:
// don't know what type"); a query's own mistakes have other types (Parser,
// Binder, Catalog, Conversion, ...).
var suspectErrors = []string{"Invalid Error", "IO Error", "INTERNAL Error", "Serialization Error"}

// check reads every ready entry in full when err may come from a damaged
// cache file that the message does not name, and drops the entries that do
// not read. It reports whether it dropped any. It costs a scan of the
// cache, so it runs only for such errors.
func (c *cache) check(ctx context.Context, err error) bool {
	if !slices.ContainsFunc(suspectErrors, func(p string) bool { return strings.Contains(err.Error(), p) }) {
		return false
	}
	c.mu.Lock()
	keys := slices.Collect(maps.Keys(c.ready))
	c.mu.Unlock()
	var bad []string
	for _, key := range keys {
		// hash() cannot be answered from Parquet statistics, so every
		// page of every column is decoded.
		rows, err := c.sql.QueryContext(ctx, "SELECT max(hash(COLUMNS(*))) FROM read_parquet("+quoteString(globEscape(c.path(key)))+")")
		if err == nil {
			err = rows.Close()
		}
		if err != nil && ctx.Err() == nil {
			bad = append(bad, key)
			c.log.Warn("lake database: a Parquet cache file does not read; using the CSV file", "cache", c.path(key), "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, key := range bad {
		c.drop(key)
	}
	return len(bad) > 0
}

// drop forgets the entry key and removes its file; the file is converted
// again once (the entry may have been deleted or damaged from outside),
// and stays CSV if its entry has to be dropped again. c.mu is held.
func (c *cache) drop(key string) {
	if !c.ready[key] {
		return
	}
	delete(c.ready, key)
	c.dropped[key]++
	if c.dropped[key] > 1 {
		c.failed[key] = true
	}
	c.gen++
	if err := os.Remove(c.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("lake database: remove an unreadable cache file", "cache", c.path(key), "err", err)
	}
}

// run converts queued files one at a time and sweeps the directory when
// the live set changed.
func (c *cache) run(ctx context.Context) {
	defer close(c.done)
	if c.root != "" {
		owner := c.own()
		defer os.Remove(owner)
		c.sweepLakes()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			sweep := !c.swept
			c.swept = true
			live := c.live
			c.mu.Unlock()
			if sweep {
				c.sweep(live)
			}
			c.mu.Lock()
			if len(c.queue) == 0 || ctx.Err() != nil {
				c.mu.Unlock()
				break
			}
			j := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			err := c.convert(ctx, j)
			c.mu.Lock()
			delete(c.pending, j.key)
			switch {
			case err == nil:
				c.ready[j.key] = true
				c.gen++
				c.fullLogged = false
			case errors.Is(err, errCacheFull):
				// Tried again by later refreshes: a sweep may free space.
			case ctx.Err() == nil:
				c.failed[j.key] = true
			}
			logIt := err != nil && ctx.Err() == nil && (!errors.Is(err, errCacheFull) || !c.fullLogged)
			if errors.Is(err, errCacheFull) {
				c.fullLogged = true
			}
			c.mu.Unlock()
			if logIt {
				level := slog.LevelWarn
				if errors.Is(err, errWideRows) {
					level = slog.LevelInfo // by design, not a fault
				}
				c.log.Log(ctx, level, "lake database: cache a lake file as Parquet; queries read the CSV file", "file", j.rel, "err", err)
			}
		}
	}
}

// errCacheFull: the cache holds its limit already.
var errCacheFull = errors.New("the Parquet cache is full")

// convert makes the entry of j ready: an existing entry (of an earlier
// process) is verified, otherwise the CSV file is converted to a temporary
// file that is renamed into place, so a crash never leaves a partial entry
// under a name that is read.
func (c *cache) convert(ctx context.Context, j job) error {
	final := c.path(j.key)
	if _, err := os.Stat(final); err == nil {
		err := c.verify(ctx, final, j.cols)
		if err == nil {
			touch(final)
			return nil
		}
		if ctx.Err() != nil {
			// Close interrupted the check: the entry is not damaged.
			return fmt.Errorf("check the cache file %s: %w", final, ctx.Err())
		}
		if _, statErr := os.Stat(final); errors.Is(statErr, fs.ErrNotExist) {
			// Removed meanwhile (by another process's eviction): a race,
			// not damage; converted again without a warning.
			c.log.Debug("lake database: a Parquet cache file went away; converting the CSV file again", "cache", final)
		} else {
			c.log.Warn("lake database: an existing Parquet cache file is unreadable; converting the CSV file again", "cache", final, "err", err)
		}
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the unreadable cache file %s: %w", final, err)
		}
	}
	c.mu.Lock()
	full := c.size+j.size > c.limit
	c.mu.Unlock()
	if full {
		return fmt.Errorf("%w (%d bytes, limit %d)", errCacheFull, c.size, c.limit)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("create the cache directory %s: %w", c.dir, err)
	}
	if c.root != "" {
		if err := c.recordRoot(); err != nil {
			return err
		}
	}
	groupRows, err := rowGroupSize(j.csv, j.size)
	if err != nil {
		return err
	}
	// A fresh name that does not exist yet: DuckDB would write an existing
	// file's replacement under a name of its own.
	tmpName := filepath.Join(c.dir, fmt.Sprintf("%s.%d.%d.tmp", j.key, os.Getpid(), time.Now().UnixNano()))
	defer os.Remove(tmpName) // a no-op after the rename
	q := fmt.Sprintf("COPY (SELECT %s FROM %s) TO %s (FORMAT parquet, USE_TMP_FILE false, PRESERVE_ORDER false, ROW_GROUP_SIZE %d)",
		convertList(j.cols), readFiles(j.cols, []string{j.csv}, false), quoteString(tmpName), groupRows)
	if _, err := c.sql.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("convert %s: %w", j.csv, err)
	}
	if fi, err := os.Stat(j.csv); err != nil || fi.Size() != j.size {
		// Lake files never change; one that did is not cached.
		return fmt.Errorf("%s changed while it was converted", j.csv)
	}
	if err := c.verify(ctx, tmpName, j.cols); err != nil {
		return err
	}
	fi, err := os.Stat(tmpName)
	if err != nil {
		return fmt.Errorf("stat the cache file %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return fmt.Errorf("publish the cache file %s: %w", final, err)
	}
	c.mu.Lock()
	c.size += fi.Size()
	c.mu.Unlock()
	return nil
}

// A conversion runs in the database's memory limit, next to queries, and
// part of what DuckDB's Parquet writer holds is outside that limit, so the
// conversion is kept small: it does not preserve row order (which would
// buffer batches; a partition file's rows have no order that a view
// depends on), and its row groups (which the writer holds until written,
// at least one 2048-row vector) aim at groupBytes of CSV text. Files whose
// rows average more than maxRowBytes stay CSV. Measured on a 300 MB file
// of 15 kB rows: peak RSS 630 MB preserving order, 450 MB without; 4 MB
// groups took the 1M-row benchmark's conversion from 460 to 385 MB. A
// file is not cached when its smallest possible row group would exceed
// maxGroupBytes (rows of more than 8 kB on average, in files above 16 MB).
const (
	groupBytes    = 4 << 20
	maxGroupBytes = 16 << 20
	minGroup      = 2048
	maxGroup      = 122880 // DuckDB's default
	sampleBytes   = 4 << 20
)

// errWideRows: a file's rows are too wide to convert within the memory
// budget; it stays CSV.
var errWideRows = errors.New("rows too wide to cache within the memory limit")

// rowGroupSize estimates the rows per group of the CSV file at path, of
// size bytes, from its first sampleBytes (its average line length).
func rowGroupSize(path string, size int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("sample %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, sampleBytes)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("sample %s: %w", path, err)
	}
	lines := bytes.Count(buf[:n], []byte{'\n'})
	if lines == 0 {
		lines = 1
	}
	avg := max(n/lines, 1)
	if min(size, int64(minGroup*avg)) > maxGroupBytes {
		return 0, fmt.Errorf("%s: %w (%d bytes per row on average)", path, errWideRows, avg)
	}
	return min(max(groupBytes/avg, minGroup), maxGroup), nil
}

// verify checks that DuckDB reads the Parquet footer of path and that it
// holds the columns of the conversion.
func (c *cache) verify(ctx context.Context, path string, cols []column) error {
	rows, err := c.sql.QueryContext(ctx, "SELECT * FROM read_parquet("+quoteString(globEscape(path))+") LIMIT 0")
	if err != nil {
		return fmt.Errorf("read the cache file %s: %w", path, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("read the cache file %s: %w", path, err)
	}
	want := make([]string, len(cols))
	for i, col := range cols {
		want[i] = col.field
	}
	if !slices.Equal(names, want) {
		return fmt.Errorf("cache file %s has columns %v, want %v", path, names, want)
	}
	return rows.Err()
}

// sweep removes entries the live state does not name once they are older
// than the grace period, temporary files of conversions that died, and,
// beyond the size limit, the least recently used entries the state does not
// name. Live entries are kept; when they alone fill the limit, conversions
// stop (errCacheFull).
func (c *cache) sweep(live map[string]bool) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("lake database: list the Parquet cache", "dir", c.dir, "err", err)
		}
		return
	}
	type entry struct {
		key  string
		path string
		size int64
		mod  time.Time
	}
	var old []entry
	var removed []string
	var total int64
	now := time.Now()
	c.mu.Lock()
	grace := c.grace
	c.mu.Unlock()
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		p := filepath.Join(c.dir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			if now.Sub(fi.ModTime()) > staleTemp {
				c.remove(p)
			}
			continue
		}
		m := entryName.FindStringSubmatch(e.Name())
		if m == nil || m[0] != e.Name() {
			continue
		}
		if !live[m[1]] {
			if now.Sub(fi.ModTime()) > grace {
				c.remove(p)
				removed = append(removed, m[1])
				continue
			}
			old = append(old, entry{m[1], p, fi.Size(), fi.ModTime()})
		}
		total += fi.Size()
	}
	slices.SortFunc(old, func(a, b entry) int { return a.mod.Compare(b.mod) })
	for _, e := range old {
		if total <= c.limit {
			break
		}
		c.remove(e.path)
		removed = append(removed, e.key)
		total -= e.size
	}
	c.mu.Lock()
	c.size = total
	for _, key := range removed {
		// Not live, so no view reads it; a later state that names the
		// file again converts it again.
		delete(c.ready, key)
	}
	c.mu.Unlock()
}

func (c *cache) remove(p string) {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("lake database: remove a Parquet cache file", "cache", p, "err", err)
	}
}

// touch marks an entry as used now: the modification time orders eviction.
func touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now) // only an eviction hint
}

// convertList converts read_csv's text fields to the view's types, keeping
// the field names: the columns of a cache file.
func convertList(cols []column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.expr + " AS " + c.field
	}
	return strings.Join(parts, ", ")
}

// rootFile, in a DefaultCacheDir, holds the lake root it caches.
const rootFile = "lake-root"

// recordRoot writes rootFile unless it holds the root already, under a
// temporary name renamed into place: another process's sweepLakes must
// never read it empty or half written (it once removed live caches so).
func (c *cache) recordRoot() error {
	p := filepath.Join(c.dir, rootFile)
	if b, err := os.ReadFile(p); err == nil && string(b) == c.root {
		return nil
	}
	tmp := fmt.Sprintf("%s.%d.%d.tmp", p, os.Getpid(), time.Now().UnixNano())
	if err := os.WriteFile(tmp, []byte(c.root), 0o644); err != nil {
		return fmt.Errorf("record the lake root in %s: %w", c.dir, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record the lake root in %s: %w", c.dir, err)
	}
	return nil
}

// ownerPrefix begins the name of the file each process keeps in a
// DefaultCacheDir while its lake database is open, owner-<host>-<pid>,
// holding {"host","pid","since"}: sweepLakes removes a directory only when
// every owner is proven dead. The name never matches entryName, so sweep
// leaves it alone.
const ownerPrefix = "owner-"

// owner is the content of an owner file.
type owner struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

// own writes this process's owner file into c.dir and returns its path
// (empty when it could not be written: the directory is then only
// protected by its recent use, as one of an older lakelink is).
func (c *cache) own() string {
	o := owner{Host: proc.Host(), PID: os.Getpid(), Since: time.Now().UTC()}
	p := filepath.Join(c.dir, fmt.Sprintf("%s%s-%d", ownerPrefix, o.Host, o.PID))
	data, err := json.Marshal(o)
	if err == nil {
		err = os.MkdirAll(c.dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(p, data, 0o644)
	}
	if err != nil {
		c.log.Warn("lake database: record this process as a user of the Parquet cache", "dir", c.dir, "err", err)
		return ""
	}
	return p
}

// ownedByLive reports whether a process that may still run owns dir: one
// of this host whose pid runs, or one of another host (nothing here can
// prove it dead), or an owner file that cannot be read. The files of
// owners proven dead stay: removing them would make dir look recently used.
func ownedByLive(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	host := proc.Host()
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ownerPrefix) {
			continue
		}
		var o owner
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			err = json.Unmarshal(data, &o)
		}
		if err != nil || o.Host != host || proc.Alive(o.PID) {
			return true
		}
	}
	return false
}

// sweepLakes removes the default cache directories (siblings of c.dir)
// whose lake no longer exists, such as those of temporary lakes, once no
// owner may be alive (ownedByLive) and nothing in them changed for
// staleTemp (a process of an older lakelink, which writes no owner file,
// converts or touches its files while it runs). A directory whose rootFile
// is missing, empty or not an absolute path is not lakelink's to judge and
// stays.
func (c *cache) sweepLakes() {
	parent := filepath.Dir(c.dir)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return // nothing cached yet
	}
	for _, e := range ents {
		dir := filepath.Join(parent, e.Name())
		if !e.IsDir() || dir == c.dir {
			continue
		}
		root, err := os.ReadFile(filepath.Join(dir, rootFile))
		if err != nil || !filepath.IsAbs(string(root)) || recentlyUsed(dir) {
			continue
		}
		if _, err := os.Stat(string(root)); errors.Is(err, fs.ErrNotExist) && !ownedByLive(dir) {
			if err := os.RemoveAll(dir); err != nil {
				c.log.Warn("lake database: remove the Parquet cache of a lake that no longer exists", "dir", dir, "lake", string(root), "err", err)
			}
		}
	}
}

// recentlyUsed reports whether anything in dir (or dir itself) changed
// within staleTemp, or dir cannot be listed.
func recentlyUsed(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	cutoff := time.Now().Add(-staleTemp)
	if fi, err := os.Stat(dir); err != nil || fi.ModTime().After(cutoff) {
		return true
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return true
		}
	}
	return false
}

// DefaultCacheDir is where Open keeps the Parquet cache of the lake whose
// root is root: under the user's cache directory, one folder per lake.
func DefaultCacheDir(root string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user's cache directory for the lake database's Parquet cache: %w", err)
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(base, "lakelink", hex.EncodeToString(sum[:8])), nil
}
