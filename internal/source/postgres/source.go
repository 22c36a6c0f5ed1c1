// Package postgres is the PostgreSQL source: it lists and describes tables,
// copies them under an exported snapshot of a logical replication slot, and
// streams their changes from that slot with the pgoutput plugin. See
// docs/postgres.md for setup, the type table and the behaviour on TOAST,
// TRUNCATE and schema changes.
//
// It registers itself as source.type postgres (register.go) and implements
// source.HealthReporter (the slot's retained WAL and lag) and
// source.Lifecycle (unlink drops the slot and the publication it created),
// in status.go. It imports package source and schema only.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Config configures a Source.
type Config struct {
	// DSN is a libpq connection string or URL. A password may also come
	// from PasswordFile or the PGPASSWORD environment variable; it is never
	// logged nor put in an error.
	DSN          string
	PasswordFile string
	// Publication and Slot name the publication and logical replication
	// slot; empty means lakelink_<link>. Existing ones are used as they are.
	Publication string
	Slot        string
	// Link is the link's name; it derives the default names.
	Link   string
	Tables []TableConfig
	// CopyWorkers is how many connections copy chunks of a big table in
	// parallel (default: the CPU count, at most 4).
	CopyWorkers int
	// BatchRows bounds the changes of one batch (default 10000).
	BatchRows int
	Events    source.Events
	Logger    *slog.Logger
}

// TableConfig configures one table.
type TableConfig struct {
	// Name is the table as SQL names it: "public.orders", "orders".
	Name string
	// PartitionColumn is the timestamp column choosing a row's partition.
	PartitionColumn string
	// Committed is the table's description the lake committed last (nil
	// for a table the lake does not have): when PartitionColumn is no
	// longer a column of the table, the column the lake partitions it by
	// is found in it by its id, so a partition column renamed while
	// lakelink was stopped keeps partitioning the table (#15 case 5).
	Committed *schema.Table
}

// Errors New wraps, for callers that react to the kind of failure.
var (
	ErrUnreachable = errors.New("PostgreSQL server unreachable")
	ErrAuth        = errors.New("PostgreSQL authentication failed")
	ErrNotLogical  = errors.New("PostgreSQL is not set up for logical replication")
	ErrPrivilege   = errors.New("PostgreSQL role lacks a privilege lakelink needs")
)

// Source is a connected PostgreSQL database. It implements source.Source.
type Source struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig
	where   string // host/port/db/user for messages, never the password
	pub     string
	slot    string
	types   typeCache

	// setup serialises creating the publication and exported snapshots.
	setup sync.Mutex
	mu    sync.Mutex
	// exports by snapshot name: exported snapshots kept alive for copies.
	exports map[string]*export
	// holds: per table OID, the consistent point of a copy whose table no
	// Stream includes yet; the slot must not confirm past it (see copy.go).
	holds map[uint32]pglogrepl.LSN
	// confirmed is the highest LSN a Stream confirmed to the slot.
	confirmed pglogrepl.LSN
	seq       int
	// partitionIDs: per table (as configured), the table OID and attnum
	// of the partition column last resolved, so that it is found again
	// after a rename under this process (partitionColumn).
	partitionIDs map[string][2]string
}

var _ source.Source = (*Source)(nil)

var nameRE = regexp.MustCompile(`[^a-z0-9_]+`)

// defaultName derives lakelink_<link>, a valid slot and publication name.
func defaultName(link string) string {
	n := "lakelink_" + nameRE.ReplaceAllString(strings.ToLower(link), "_")
	if len(n) > 50 {
		n = n[:50]
	}
	return n
}

// New connects and checks that the server can serve as a source: reachable,
// credentials accepted, wal_level=logical, replication privilege, and the
// configured tables present and readable.
func New(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres source: no DSN configured")
	}
	if cfg.Link == "" {
		return nil, errors.New("postgres source: no link name configured")
	}
	if cfg.CopyWorkers <= 0 {
		// Decoding rows costs the client about as much CPU as reading them
		// costs the server, so workers beyond the client's cores do not help.
		cfg.CopyWorkers = min(4, runtime.NumCPU())
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 10000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error may quote the DSN, and with it a password.
		return nil, errors.New("postgres source: cannot parse the DSN (not shown: it may hold a password); check its syntax (key=value pairs or a postgres:// URL)")
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("postgres source: read password file %s: %w", cfg.PasswordFile, err)
		}
		pcfg.ConnConfig.Password = strings.TrimRight(string(b), "\r\n")
	}
	for k, v := range sessionParams {
		pcfg.ConnConfig.RuntimeParams[k] = v
	}
	pcfg.MaxConns = int32(cfg.CopyWorkers + 4)
	s := &Source{
		cfg:          cfg,
		log:          log,
		connCfg:      pcfg.ConnConfig.Copy(),
		where:        fmt.Sprintf("host=%s port=%d dbname=%s user=%s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database, pcfg.ConnConfig.User),
		pub:          cfg.Publication,
		slot:         cfg.Slot,
		exports:      map[string]*export{},
		holds:        map[uint32]pglogrepl.LSN{},
		partitionIDs: map[string][2]string{},
	}
	if s.pub == "" {
		s.pub = defaultName(cfg.Link)
	}
	if s.slot == "" {
		s.slot = defaultName(cfg.Link)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: %w", s.where, err)
	}
	if err := s.check(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// connectError classifies a connection failure.
func (s *Source) connectError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("%w at %s: %s; check the user and the password (password file, PGPASSWORD or DSN) and pg_hba.conf", ErrAuth, s.where, pgErr.Message)
		case "3D000":
			return fmt.Errorf("postgres source %s: database does not exist; check dbname in the DSN", s.where)
		}
		return fmt.Errorf("postgres source %s: %w", s.where, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w at %s: %v; check host and port and that the server runs and accepts connections", ErrUnreachable, s.where, err)
}

func (s *Source) check(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.connectError(err)
	}
	defer conn.Release()
	var walLevel string
	var version int
	var repl bool
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('server_version_num')::int,
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&walLevel, &version, &repl)
	if err != nil {
		return fmt.Errorf("postgres source %s: read server settings: %w", s.where, err)
	}
	if version < 140000 {
		return fmt.Errorf("postgres source %s: server version %d is too old; lakelink needs PostgreSQL 14 or newer", s.where, version)
	}
	if walLevel != "logical" {
		return fmt.Errorf("%w at %s: wal_level is %q; set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server", ErrNotLogical, s.where, walLevel)
	}
	if !repl {
		return fmt.Errorf("%w at %s: role %s has no REPLICATION attribute; run ALTER ROLE %s REPLICATION as a superuser", ErrPrivilege, s.where, s.connCfg.User, pgx.Identifier{s.connCfg.User}.Sanitize())
	}
	// Tables are checked one by one in Describe, not here: a missing or
	// unreadable table fails alone, at start as at run time, and never
	// stops the link's other tables (#15 case 15).
	return nil
}

// Close releases connections and exported snapshots (dropping the
// temporary slots they hold).
func (s *Source) Close() error {
	s.mu.Lock()
	exps := s.exports
	s.exports = map[string]*export{}
	s.mu.Unlock()
	for _, e := range exps {
		e.close()
	}
	s.pool.Close()
	return nil
}

// Tables lists the ordinary tables of the database outside the system
// schemas, as schema.table. A table is tracked when it has a key lakelink
// can follow (see keyColumns).
func (s *Source) Tables(ctx context.Context) ([]source.TableInfo, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
		       c.relreplident::text = 'i' OR (c.relreplident::text IN ('d', 'f') AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: list tables: %w", s.where, err)
	}
	var out []source.TableInfo
	for rows.Next() {
		var ti source.TableInfo
		if err := rows.Scan(&ti.Name, &ti.Tracked); err != nil {
			return nil, fmt.Errorf("postgres source %s: list tables: %w", s.where, err)
		}
		out = append(out, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres source %s: list tables: %w", s.where, err)
	}
	return out, nil
}

// table is a resolved table: its identity, columns and key.
type table struct {
	oid       uint32
	name      string // as the caller spells it
	qualified string // quoted schema.table for SQL
	desc      *schema.Table
	dec       []decoder // per desc.Columns
	key       []int     // indexes into desc.Columns
	// cols names desc.Columns: the Columns every change of the table
	// shares (source.Change).
	cols []string
}

// Describe returns the table's schema. Its key is the primary key, or the
// REPLICA IDENTITY index when one is set; a table with neither gets a
// *source.NotTrackedError.
func (s *Source) Describe(ctx context.Context, name string) (*schema.Table, error) {
	t, err := s.table(ctx, name)
	if err != nil {
		return nil, err
	}
	var can bool
	if err := s.pool.QueryRow(ctx, `SELECT has_table_privilege($1::oid, 'SELECT')`, t.oid).Scan(&can); err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: check SELECT privilege: %w", s.where, name, err)
	}
	if !can {
		return nil, fmt.Errorf("%w: table %s: role %s cannot SELECT from it; run GRANT SELECT ON %s TO %s", ErrPrivilege, name, s.connCfg.User, t.qualified, pgx.Identifier{s.connCfg.User}.Sanitize())
	}
	return t.desc, nil
}

func (s *Source) table(ctx context.Context, name string) (*table, error) {
	t := &table{name: name}
	var schemaName, relName, kind, ident string
	err := s.pool.QueryRow(ctx, `
		SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relreplident::text,
		       quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, name).Scan(&t.oid, &schemaName, &relName, &kind, &ident, &t.qualified)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres source %s: table %s does not exist (or the role cannot see it); check the name in the link's tables", s.where, name)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: %w", s.where, name, err)
	}
	if kind != "r" {
		return nil, &source.NotTrackedError{Table: name, Fix: "only ordinary tables can be linked (not views, partitioned parents or foreign tables); link the partitions instead"}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT attname, atttypid, atttypmod, attnum FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
		ORDER BY attnum`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: read columns: %w", s.where, name, err)
	}
	type attr struct {
		name string
		oid  uint32
		mod  int32
		num  int16
	}
	var attrs []attr
	for rows.Next() {
		var a attr
		if err := rows.Scan(&a.name, &a.oid, &a.mod, &a.num); err != nil {
			return nil, fmt.Errorf("postgres source %s: table %s: read columns: %w", s.where, name, err)
		}
		attrs = append(attrs, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: read columns: %w", s.where, name, err)
	}
	// The OID and the attnums identify the table and its columns for
	// their life, across renames (schema.Renames).
	t.desc = &schema.Table{Name: strings.ToLower(name), SourceID: strconv.FormatUint(uint64(t.oid), 10)}
	for _, a := range attrs {
		ct, err := s.types.column(ctx, s.pool, a.oid, a.mod)
		if err != nil {
			return nil, fmt.Errorf("postgres source %s: table %s: column %s: %w", s.where, name, a.name, err)
		}
		col := ct.col
		col.Name = a.name
		col.SourceID = int(a.num)
		t.desc.Columns = append(t.desc.Columns, col)
		t.dec = append(t.dec, ct.dec)
		t.cols = append(t.cols, col.Name)
	}
	key, err := s.keyColumns(ctx, t.oid, ident)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: %w", s.where, name, err)
	}
	if len(key) == 0 {
		return nil, &source.NotTrackedError{Table: name, Fix: fmt.Sprintf("it has no primary key; add one (ALTER TABLE %s ADD PRIMARY KEY (...)) or point REPLICA IDENTITY at a unique index of NOT NULL columns (ALTER TABLE %[1]s REPLICA IDENTITY USING INDEX ...)", t.qualified)}
	}
	t.desc.Key = key
	for _, k := range key {
		for i, c := range t.desc.Columns {
			if c.Name == k {
				t.key = append(t.key, i)
			}
		}
	}
	for _, tc := range s.cfg.Tables {
		if tc.Name == name && tc.PartitionColumn != "" {
			col, err := s.partitionColumn(t.desc, tc)
			if err != nil {
				return nil, err
			}
			t.desc.PartitionColumn = col
		}
	}
	return t, nil
}

// partitionColumn returns the column of desc that partitions the table tc
// configures: tc.PartitionColumn, or, when the table no longer has it, the
// column the lake partitions the table by (tc.Committed), found by its id:
// a partition column renamed at the source keeps partitioning the table
// under its new name, as the stream follows a rename it sees (#15 case 5),
// and a warning asks for the profile to name it.
func (s *Source) partitionColumn(desc *schema.Table, tc TableConfig) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := desc.Column(tc.PartitionColumn); ok {
		s.partitionIDs[tc.Name] = [2]string{desc.SourceID, strconv.Itoa(c.SourceID)}
		return tc.PartitionColumn, nil
	}
	// Known: the column resolved before in this process (renamed since),
	// else the lake's committed partition column.
	var known [][2]string
	if id, ok := s.partitionIDs[tc.Name]; ok {
		known = append(known, id)
	}
	if k := tc.Committed; k != nil {
		if kc, ok := k.Column(k.PartitionColumn); ok && kc.SourceID != 0 {
			known = append(known, [2]string{k.SourceID, strconv.Itoa(kc.SourceID)})
		}
	}
	for _, id := range known {
		for _, c := range desc.Columns {
			if id[0] != "" && id[0] == desc.SourceID && id[1] == strconv.Itoa(c.SourceID) {
				s.log.Warn("the link's partition_column is not a column of the table: the table stays partitioned by the column the lake partitions it by, renamed at the source; set partition_column to its name in the link profile",
					"table", tc.Name, "partition_column", tc.PartitionColumn, "partitioned_by", c.Name)
				return c.Name, nil
			}
		}
	}
	return "", fmt.Errorf("postgres source %s: table %s: partition column %s does not exist; fix partition_column in the link (a column renamed at the source: set its new name)", s.where, tc.Name, tc.PartitionColumn)
}

// keyColumns returns the columns that identify a row in the change stream:
// the REPLICA IDENTITY index when set, else the primary key (REPLICA
// IDENTITY DEFAULT or FULL). REPLICA IDENTITY NOTHING, or no primary key,
// gives none: such a table is refused rather than keyed by a hash of the
// whole row, which would merge identical rows and break on every update.
func (s *Source) keyColumns(ctx context.Context, oid uint32, ident string) ([]string, error) {
	var cond string
	switch ident {
	case "i":
		cond = "i.indisreplident"
	case "d", "f":
		cond = "i.indisprimary"
	default:
		return nil, nil
	}
	var key []string
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(a.attname ORDER BY k.ord), '{}')
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND `+cond, oid).Scan(&key)
	if err != nil {
		return nil, fmt.Errorf("read key columns: %w", err)
	}
	return key, nil
}
