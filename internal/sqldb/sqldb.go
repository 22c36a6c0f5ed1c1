// Package sqldb is the lake database: SQL (an embedded, in-memory DuckDB)
// over the committed files of a lake, in the shape Synapse Link's lake
// database has (reference section 6).
//
// Every lake table appears as two views, <table> (current data) and
// <table>_partitioned (the newest snapshot; a PostgreSQL table schema.table
// is a view in that schema, names.go), next to the five choice
// metadata tables and the sys.external_* catalog. Views read only files a
// committed State names, and writers never change a named file, so a query
// never sees a half-written file or half a commit. The views are rebuilt,
// in one DuckDB transaction, whenever the committed state moves on; they
// read files only when queried. A background worker keeps a Parquet copy
// of each partition and snapshot file (cache.go); a view reads the copy
// once it is ready.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store"
)

// partitionedSuffix names a table's snapshot view.
const partitionedSuffix = "_partitioned"

// DB is a lake database. It is safe for concurrent use.
type DB struct {
	st        store.Store
	load      func(context.Context) (*lake.State, error)
	connector *duckdb.Connector
	sql       *sql.DB
	spill     string // DuckDB's temp_directory, removed by Close
	cache     *cache // nil when the Parquet cache is off

	// mu serialises refreshes; the fields below describe what the DuckDB
	// catalog holds and change only with a committed refresh.
	mu      sync.Mutex
	loaded  bool
	seq     int64
	gen     int64                // the cache generation the views were planned with
	defs    map[sqlName]viewDef  // every view the state at seq needs (viewNames)
	index   map[string][]sqlName // nameIndex(defs)
	views   map[sqlName]string   // the views created so far (a subset of defs) -> their SQL
	schemas map[string]bool      // schemas the views made (never main or sys)
	metaOn  bool                 // the metadata tables are filled (once a statement needed them)
	meta    map[string]string    // table -> fingerprint of its metadata rows
	// catalogOn: sys.external_tables and sys.external_data_sources are
	// filled (once a statement needed them); catalog fingerprints them.
	catalogOn bool
	catalog   string
	objects   map[string]object // sys.external_tables identity, stable across refreshes
	nextID    int

	// live hands the cache the keys of every file the latest state names
	// (liveKeys), computed in the background: on thousands of tables that
	// takes longer than a query of one.
	live *liveSet
}

// object is what sys.external_tables remembers of a SQL table.
type object struct {
	id       int
	created  time.Time
	modified time.Time
}

// NameConflictError reports a lake table whose SQL name is already taken
// (DuckDB names ignore case): by another table, another table's
// _partitioned view or a metadata table. The lake cannot be queried until
// one of the tables leaves the link.
type NameConflictError struct {
	// Name is the SQL name both need.
	Name string
	// Table is the lake table that needs it; Other is the table (or
	// metadata table) that has it.
	Table string
	Other string
}

func (e *NameConflictError) Error() string {
	return fmt.Sprintf("lake table %q needs the SQL name %q, which %q has already (SQL names ignore case); remove one of the two tables from the link", e.Table, e.Name, e.Other)
}

// Options tune a lake database.
type Options struct {
	// CacheDir holds Parquet copies of the lake's partition and snapshot
	// files, made in the background, so that queries do not parse the CSV
	// files again; "" turns the cache off.
	CacheDir string
	// CacheLimit bounds CacheDir in bytes; 0 means DefaultCacheLimit.
	CacheLimit int64
	// Logger receives cache errors (queries then read the CSV files); nil
	// means slog.Default().
	Logger *slog.Logger
}

// Open creates an in-memory DuckDB lake database over the lake in st; load
// returns the latest committed state (lake.ReadState in production). It
// reads the state once so that a lake that cannot be read fails here. Its
// Parquet cache is in DefaultCacheDir of the lake root, or off when the
// user has no cache directory.
func Open(ctx context.Context, st store.Store, load func(context.Context) (*lake.State, error)) (*DB, error) {
	opts := Options{Logger: slog.Default()}
	root := st.Location("")
	dir, err := DefaultCacheDir(root)
	if err != nil {
		opts.Logger.Warn("lake database: no Parquet cache; queries parse the CSV files", "err", err)
		root = ""
	} else {
		opts.CacheDir = dir
	}
	return open(ctx, st, load, opts, root)
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, st store.Store, load func(context.Context) (*lake.State, error), opts Options) (*DB, error) {
	return open(ctx, st, load, opts, "")
}

// open opens the database; root is the lake root when opts.CacheDir is its
// DefaultCacheDir (see newCache).
func open(ctx context.Context, st store.Store, load func(context.Context) (*lake.State, error), opts Options, root string) (*DB, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("start the lake database (DuckDB): %w", err)
	}
	db := &DB{
		st:        st,
		load:      load,
		connector: connector,
		sql:       sql.OpenDB(connector),
		views:     map[sqlName]string{},
		schemas:   map[string]bool{},
		meta:      map[string]string{},
		objects:   map[string]object{},
		nextID:    1000,
		live:      &liveSet{quit: make(chan struct{})},
	}
	if err := db.setup(ctx, opts.CacheDir); err != nil {
		db.Close()
		return nil, err
	}
	if opts.CacheDir != "" {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		db.cache = newCache(db.sql, opts.CacheDir, opts.CacheLimit, log, root)
	}
	if err := db.refresh(ctx, need{}); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// memoryLimit bounds DuckDB's buffers so that a query process stays under
// the 512 MB target of docs/decisions.md with room for Go; bigger sorts, joins and aggregates
// spill to a temporary directory instead. 256 MB made DuckDB fail wide
// sorts now and then even with spilling ("failed to pin block").
const memoryLimit = "384MB"

// setup bounds DuckDB's memory, locks its configuration (guard.go: files
// only under the lake root and cacheDir) and creates what does not depend
// on the state: the metadata tables and the sys catalog. Extensions are
// never installed from the network: the ones the views need (json, icu)
// are built in.
func (db *DB) setup(ctx context.Context, cacheDir string) error {
	spill, err := os.MkdirTemp("", "lakelink-sqldb-")
	if err != nil {
		return fmt.Errorf("create the lake database's spill directory: %w", err)
	}
	db.spill = spill
	stmts := []string{
		// UTC makes TIMESTAMPTZ text and date functions independent of
		// the machine's zone; GLOBAL, so that every connection of the
		// pool has it once the configuration is locked.
		"SET GLOBAL TimeZone = 'UTC'",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET memory_limit = " + quoteString(memoryLimit),
		// DuckDB's cache of file blocks would serve the old bytes of a
		// cache entry rewritten under its name (a damaged one converted
		// again); the operating system caches local files anyway.
		"SET enable_external_file_cache = false",
		"SET temp_directory = " + quoteString(spill),
	}
	dirs := []string{db.st.Location("")}
	if cacheDir != "" {
		dirs = append(dirs, cacheDir)
	}
	stmts = append(stmts, lockDown(dirs)...)
	for _, m := range metaTables {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s (%s)", quoteIdent(m.name), strings.Join(m.columns, ", ")))
	}
	stmts = append(stmts, catalogDDL...)
	for _, s := range stmts {
		if _, err := db.sql.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("set up the lake database: %s: %w", s, err)
		}
	}
	return nil
}

// Query refreshes the views if the committed state changed (its Seq), then
// runs query. Safe for concurrent use: a query sees the state of one commit,
// at least as new as the last commit before Query was called. query must be
// one SELECT statement: anything else (a write, a setting, an extension,
// several statements) fails with a *NotAllowedError before any of it runs,
// and a read outside the lake fails (guard.go). Views are created when a
// statement first names them (needOf); one that DuckDB still reports
// missing is created and the statement run again.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var rows *sql.Rows
	err := db.checked(ctx, query, func() (err error) {
		rows, err = db.sql.QueryContext(ctx, query, args...)
		return err
	})
	return rows, err
}

// checked runs do for query as Query runs it: after a refresh and the
// read-only check, again after creating a view DuckDB reported missing or
// dropping a damaged cache entry.
func (db *DB) checked(ctx context.Context, query string, do func() error) error {
	n := needOf(query)
	for attempt := 0; ; attempt++ {
		if err := db.refresh(ctx, n); err != nil {
			return err
		}
		if attempt == 0 {
			if err := db.checkQuery(ctx, query); err != nil {
				return err
			}
		}
		err := db.explainAccess(do())
		if err == nil || attempt == maxRetries {
			return err
		}
		if more, ok := missingNeed(err); ok && db.creates(more) {
			for w := range more.words {
				n.words[w] = true
			}
			continue
		}
		// A damaged cache file must not fail the query: its entry is
		// dropped, the views go back to its CSV file and the query runs
		// again. Each retry drops at least one entry.
		if db.cache == nil || !(db.cache.blame(err) || db.cache.check(ctx, err)) {
			return err
		}
	}
}

// creates reports whether n names a view that the catalog lacks.
func (db *DB) creates(n need) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return !db.holds(n)
}

// holds reports whether the catalog holds what n needs. db.mu is held and
// db.defs is of the state the catalog shows.
func (db *DB) holds(n need) bool {
	if n.all {
		return len(db.views) == len(db.defs) && db.metaOn && db.catalogOn
	}
	if (!db.metaOn && n.wants(metaWords)) || (!db.catalogOn && n.wants(catalogWords)) {
		return false
	}
	named := false
	for w := range n.words {
		for _, name := range db.index[w] {
			named = true
			if _, ok := db.views[name]; !ok {
				return false
			}
		}
	}
	// SHOW TABLES, DESCRIBE: the listing needs every view.
	return named || !n.listing || len(db.views) == len(db.defs)
}

// maxRetries bounds the retries of a query (and of a refresh) that failed
// on damaged cache files or on views not created yet.
const maxRetries = 100

// WaitCache creates every view, then returns once the Parquet cache holds
// every partition and snapshot file of the latest committed state (or
// their conversion failed) and the views read it, or when ctx ends. Queries never need it; a
// short-lived process (a one-off query) can call it before Close to leave
// a warm cache to the next, since Close stops a running conversion. With
// the cache off it returns at once.
func (db *DB) WaitCache(ctx context.Context) error {
	if db.cache == nil {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := db.refresh(ctx, need{all: true}); err != nil {
			return err
		}
		db.mu.Lock()
		planned := db.gen
		db.mu.Unlock()
		if db.cache.idle() && db.cache.generation() == planned {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the Parquet cache: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Close releases DuckDB and its spill directory. Rows still open fail.
func (db *DB) Close() error {
	db.live.stop()
	if db.cache != nil {
		db.cache.close()
	}
	err := errors.Join(db.sql.Close(), db.connector.Close())
	if db.spill != "" {
		err = errors.Join(err, os.RemoveAll(db.spill))
	}
	return err
}

// refresh brings the catalog to the latest committed state, with the views
// n needs and those created before. Only views and metadata that differ
// from what the catalog holds are replaced, all in one transaction:
// queries running meanwhile keep the catalog they started with.
func (db *DB) refresh(ctx context.Context, n need) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	state, err := db.load(ctx)
	if err != nil {
		return fmt.Errorf("read the lake's committed state: %w", err)
	}
	if state == nil {
		return errors.New("read the lake's committed state: the loader returned no state")
	}
	for attempt := 0; ; attempt++ {
		var gen int64
		if db.cache != nil {
			gen = db.cache.generation()
		}
		if db.loaded && state.Seq == db.seq && gen == db.gen && db.holds(n) {
			return nil
		}
		err := db.apply(ctx, state, gen, n)
		// DuckDB reads a Parquet file's footer when it creates a view
		// over it: an unreadable cache file fails the refresh, so the
		// views are planned again without it (each attempt drops at
		// least one entry).
		if err != nil && db.cache != nil && attempt < maxRetries && db.cache.blame(err) {
			continue
		}
		return err
	}
}

// apply brings the catalog to state, planned with the cache at generation
// gen: the views created before that state still has and those n needs
// are created or replaced, views of removed tables dropped; the metadata
// and sys catalog tables are refilled once a statement needed them.
// db.mu is held.
func (db *DB) apply(ctx context.Context, state *lake.State, gen int64, n need) error {
	defs, index := db.defs, db.index
	if !db.loaded || state.Seq != db.seq {
		var err error
		if defs, err = viewNames(state); err != nil {
			return err
		}
		index = nameIndex(defs)
	}
	want := map[sqlName]viewDef{}
	listed := false
	for w := range n.words {
		for _, name := range index[w] {
			want[name] = defs[name]
			listed = true
		}
	}
	if n.all || (n.listing && !listed) {
		want = defs
	}
	for name := range db.views {
		if d, ok := defs[name]; ok {
			want[name] = d
		}
	}
	views, live := db.plan(want)
	metaOn := db.metaOn || n.wants(metaWords)
	catalogOn := db.catalogOn || n.wants(catalogWords)

	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("refresh the lake database to commit %d: %w", state.Seq, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	for name := range db.views {
		if _, ok := views[name]; !ok {
			if _, err := tx.ExecContext(ctx, "DROP VIEW IF EXISTS "+name.sql()); err != nil {
				return fmt.Errorf("drop the view %s of a removed table: %w", name, err)
			}
		}
	}
	schemas := map[string]bool{}
	for name := range views {
		if name.schema != mainSchema {
			schemas[name.schema] = true
		}
	}
	for schema := range schemas {
		if !db.schemas[schema] {
			if _, err := tx.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schema)); err != nil {
				return fmt.Errorf("create the schema %s at commit %d: %w", schema, state.Seq, err)
			}
		}
	}
	for name, body := range views {
		if db.views[name] == body {
			continue
		}
		if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+name.sql()+" AS "+body); err != nil {
			return fmt.Errorf("create the view %s at commit %d: %w", name, state.Seq, err)
		}
	}
	for schema := range db.schemas {
		if !schemas[schema] {
			// Only lakelink's views live there (a query's own objects are
			// temporary); RESTRICT keeps anything else.
			if _, err := tx.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+quoteIdent(schema)); err != nil {
				return fmt.Errorf("drop the schema %s of removed tables: %w", schema, err)
			}
		}
	}
	meta := db.meta
	if metaOn {
		var metaRows map[string][][][]any
		meta, metaRows = plannedMeta(state)
		if err := db.refreshMeta(ctx, tx, meta, metaRows); err != nil {
			return err
		}
	}
	catalog, objects, nextID := db.catalog, db.objects, db.nextID
	if catalogOn {
		objects = maps.Clone(db.objects)
		if catalog, err = db.refreshCatalog(ctx, tx, state, objects, &nextID); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("refresh the lake database to commit %d: %w", state.Seq, err)
	}
	if db.cache != nil {
		db.live.set(db.cache, state, live)
	}
	db.gen = gen
	db.loaded, db.seq, db.defs, db.index, db.views, db.schemas = true, state.Seq, defs, index, views, schemas
	db.metaOn, db.meta, db.catalogOn, db.catalog, db.objects, db.nextID = metaOn, meta, catalogOn, catalog, objects, nextID
	return nil
}

// plan returns the SQL of the views defs and the keys of the cache entries
// of the files they read.
func (db *DB) plan(defs map[sqlName]viewDef) (map[sqlName]string, map[string]bool) {
	live := map[string]bool{}
	views := make(map[sqlName]string, len(defs))
	for name, d := range defs {
		t := d.table
		cols := columns(t.Columns)
		if d.partitioned {
			views[name] = plainView(cols, db.files(newestSnapshot(t), cols, live))
			continue
		}
		changes := make([]string, len(t.Changes))
		for i, f := range t.Changes {
			changes[i] = db.st.Location(f.Path)
		}
		views[name] = liveView(t, cols, db.files(t.Files, cols, live), changes)
	}
	return views, live
}

// files resolves lake files to what a view reads: a file's cache entry when
// it is ready, else its CSV file (and its conversion is queued). The keys
// of the entries go to live.
func (db *DB) files(files []lake.File, cols []column, live map[string]bool) fileSet {
	var set fileSet
	for _, f := range files {
		loc := db.st.Location(f.Path)
		if db.cache != nil {
			key, parquet := db.cache.lookup(f.Path, loc, cols)
			if key != "" {
				live[key] = true
			}
			if parquet != "" {
				set.parquet = append(set.parquet, parquet)
				continue
			}
		}
		set.csv = append(set.csv, loc)
	}
	return set
}
