package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Stream positions and versions.
//
// A stream cursor is an LSN C meaning "every transaction whose commit record
// starts at or after C is still to be delivered for this table". Copy ends
// at the slot's consistent point; a stream batch ends at the end LSN of its
// last transaction, or, when idle, at the walsender's sent position (every
// transaction committing before it has been sent). A change is delivered for
// a table only when its transaction's commit LSN >= the table's cursor, so a
// restart from any committed cursor repeats nothing already committed for
// that table and skips nothing.
//
// Version = (commit LSN << 16) + n, n = 1, 2, ... the change's position in
// its transaction, up to txnVersions - 1. Copied rows have CP << 16, so
// every streamed change of a row compares greater than its copied version,
// and later transactions greater than earlier ones (row locks order the
// transactions that change one row by commit). The shift leaves room for
// 2^47 bytes (128 TiB) of WAL.
//
// n may pass 0xFFFF: a transaction owns the versions from its commit LSN
// << 16 up to (but not including) the next WAL record's start << 16, where
// the next transaction's versions (and a copy's consistent point, a record
// boundary) begin, and the commit record is at least an XLogRecord header
// (24 bytes) long. So versions of one row increase through a transaction
// of up to 1 572 863 changes; only changes past that position share one.

const (
	// txnVersions is how many versions a transaction's changes may take
	// (see above): its commit record's least length, 24 bytes, << 16.
	txnVersions = 24 << 16
	// statusInterval is how often the slot hears from lakelink, well inside
	// the default wal_sender_timeout of 60 s.
	statusInterval = 5 * time.Second
	// batchWindow is how long a batch waits for more transactions.
	batchWindow = 100 * time.Millisecond
	// idleInterval is how often an idle stream reports that its tables are
	// current.
	idleInterval = time.Second
	// idleAdvance is how often an idle stream moves its position to the
	// server's (the WAL moves without changes of the linked tables: other
	// tables, other databases, checkpoints): each move is a lake commit.
	idleAdvance = 10 * time.Second
	// splitFactor: a transaction with more than splitFactor*BatchRows changes
	// is split across batches (the only case where a batch holds part of a
	// transaction), in parts of partFactor*BatchRows changes. Small parts
	// keep a huge transaction's memory low (a 1M-row update peaked at 400
	// MiB RSS in parts of 8*BatchRows, 205 MiB in parts of 2*BatchRows, at
	// the same speed): between the part being filled, the one being
	// committed and garbage awaiting collection, the heap holds a few.
	splitFactor = 8
	partFactor  = 2
	// recentRows bounds the memory of recent row values that resolves
	// unchanged TOASTed columns without a query; only rows whose strings
	// reach recentMinBytes (the size where TOAST may start) are kept.
	recentRows     = 10000
	recentMinBytes = 1024
)

// ReinitError reports a schema change the lake cannot follow.
type ReinitError struct {
	Table  string
	Column string
	From   string
	To     string
}

func (e *ReinitError) Error() string {
	return fmt.Sprintf("table %s: column %s changed from %s to %s, which the lake cannot follow; re-initialise the table: lakelink sync -c link.yaml --reinit %s", e.Table, e.Column, e.From, e.To, e.Table)
}

// streamTable is one table a Stream delivers.
type streamTable struct {
	t      *table
	cursor pglogrepl.LSN
}

// recentKey names a row in stream.recent.
type recentKey struct {
	oid uint32
	id  string
}

// rel is a relation as the latest pgoutput Relation message describes it.
type rel struct {
	st   *streamTable // nil for tables this Stream does not deliver
	desc *schema.Table
	dec  []decoder
	key  []int
	// cols names desc.Columns: the Columns its changes share
	// (source.Change). Every Relation message makes a new rel, so a
	// schema change gives the changes after it a new slice.
	cols      []string
	schemaDue bool // desc goes out with the next delivered change
}

// recentRow is the values last delivered for a row, and the columns that
// name them (those of the relation then, which may have changed since).
type recentRow struct {
	cols []string
	vals []any
}

// value returns the row's value of column i of cols (so cols is not
// empty), if it has the column.
func (p recentRow) value(cols []string, i int) (any, bool) {
	if len(p.cols) == len(cols) && &p.cols[0] == &cols[0] {
		return p.vals[i], true
	}
	j := slices.Index(p.cols, cols[i])
	if j < 0 {
		return nil, false
	}
	return p.vals[j], true
}

type txnState struct {
	commit  pglogrepl.LSN
	seq     int64
	changes []source.Change
	schemas map[string]*schema.Table
	split   bool // parts of the transaction went out already
}

type outBatch struct {
	batch source.Batch
	pos   pglogrepl.LSN // committed position once emitted; 0 for a part of a transaction
	// unhold lists the joined tables whose copy holds (Source.holds) this
	// batch ends: once emit accepted its Position, their committed cursor
	// is at least it.
	unhold []uint32
}

type stream struct {
	s      *Source
	conn   *pgconn.PgConn
	tables map[uint32]*streamTable
	rels   map[uint32]*rel
	row    rowMsg // the row message being handled; its columns are reused
	// recent holds the values last delivered for rows with large values.
	recent map[recentKey]recentRow
	pos    pglogrepl.LSN
	recvd  pglogrepl.LSN
	// top is the highest cursor the stream started from: once pos reaches
	// it every table is at pos, and batches carry it as their Position.
	top pglogrepl.LSN
	// nextAdvance is when a keepalive may next move an idle pos.
	nextAdvance time.Time
	txn         *txnState
	batch       source.Batch
	started     time.Time // when the pending batch got its first transaction
	out         chan outBatch
	// committed is the position of the last batch emit accepted.
	committed atomic.Uint64
	wantIdle  bool
	// A keepalive carries how far the walsender has decoded and sent, which
	// lags the WAL while it works through a backlog (or has not started).
	// The stream is current once that position reaches idleTarget, the
	// server's WAL insert position when the idle check began (it covers
	// commits acknowledged but not yet flushed, under synchronous_commit
	// off). A position that has not moved for idleInterval also counts: the
	// WAL's end can sit where the walsender has nothing more to read.
	idleTarget pglogrepl.LSN
	lastKA     pglogrepl.LSN
	lastKAAt   time.Time
	nextStat   time.Time
	nextIdle   time.Time
	// from is where the stream started: every transaction committed
	// after it was received.
	from pglogrepl.LSN
	// joinMu guards joins, the tables StreamJoin was given and run has
	// not taken yet; joining says there are some.
	joinMu  sync.Mutex
	joins   []map[string]string
	joining atomic.Bool
	// joined lists the tables joined whose holds the next batch with a
	// Position ends.
	joined []uint32
}

// Stream delivers the changes of the given tables from their cursors; see
// the comment at the top of this file.
func (s *Source) Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, source.Batch) error) error {
	return s.StreamJoin(ctx, cursors, nil, emit)
}

// StreamJoin implements source.Joiner. A table joins in place, between two
// messages, when the stream lost none of its changes after its cursor: the
// stream started at or before the cursor, and has received no change of
// the table (pgoutput announces a table by a Relation message before its
// first change of a session). A table copied while no transaction
// touched it, the common case of an initial sync, joins so. Any other
// ends the stream with source.ErrRestart: a restart from the lowest
// cursor reads its changes again. A joined table keeps its copy's hold on
// the slot until a batch with a Position covers it.
func (s *Source) StreamJoin(ctx context.Context, cursors map[string]string, join <-chan map[string]string, emit func(context.Context, source.Batch) error) error {
	st := &stream{s: s, tables: map[uint32]*streamTable{}, rels: map[uint32]*rel{}, recent: map[recentKey]recentRow{}}
	names := slices.Sorted(maps.Keys(cursors))
	if len(names) == 0 {
		return errors.New("postgres source: Stream needs at least one table")
	}
	start := pglogrepl.LSN(0)
	for _, name := range names {
		tt, err := s.streamTable(ctx, name, cursors[name])
		if err != nil {
			return err
		}
		st.tables[tt.t.oid] = tt
		if start == 0 || tt.cursor < start {
			start = tt.cursor
		}
		st.top = max(st.top, tt.cursor)
	}
	if err := st.check(ctx, names); err != nil {
		return err
	}
	s.mu.Lock()
	for oid := range st.tables {
		delete(s.holds, oid)
	}
	s.mu.Unlock()

	conn, err := s.replConn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	st.conn = conn
	if err := st.start(ctx, start); err != nil {
		return err
	}
	s.log.Info("stream started", "slot", s.slot, "from", start.String(), "tables", len(names))
	st.pos, st.recvd, st.from = start, start, start
	st.committed.Store(uint64(start))

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if join != nil {
		// Wakes run from its receive (a read deadline in the past) to
		// take the tables between two messages.
		nc := conn.Conn()
		go func() {
			for {
				select {
				case <-cctx.Done():
					return
				case c := <-join:
					st.joinMu.Lock()
					st.joins = append(st.joins, c)
					st.joining.Store(true)
					st.joinMu.Unlock()
					_ = nc.SetReadDeadline(time.Now())
				}
			}
		}()
	}
	st.out = make(chan outBatch, 2)
	emitErr := make(chan error, 1)
	go func() {
		defer close(emitErr)
		for ob := range st.out {
			if err := emit(cctx, ob.batch); err != nil {
				emitErr <- err
				cancel()
				return
			}
			if ob.pos != 0 {
				st.committed.Store(uint64(ob.pos))
			}
			for _, oid := range ob.unhold {
				s.unhold(oid)
			}
		}
	}()
	err = st.run(cctx)
	close(st.out)
	eerr := <-emitErr
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case eerr != nil:
		return eerr
	}
	return err
}

// start starts replication. The walsender of a Stream that just ended may
// still hold the slot for a moment: "in use" is retried for up to 10 s.
func (st *stream) start(ctx context.Context, start pglogrepl.LSN) error {
	s := st.s
	args := []string{"proto_version '1'", "publication_names " + quoteLiteral(s.pub)}
	for try := 0; ; try++ {
		err := pglogrepl.StartReplication(ctx, st.conn, s.slot, start, pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || try == 20 {
			if err != nil {
				return fmt.Errorf("postgres source %s: start replication from slot %s at %s: %w", s.where, s.slot, start, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// check refuses cursors the slot can no longer serve: the error joins a
// *source.CursorExpiredError for every table concerned (all of them when
// the slot is gone), so that the engine copies them afresh together, under
// one snapshot, rather than one per stream restart (#15 case 11).
func (st *stream) check(ctx context.Context, names []string) error {
	s := st.s
	all := func(reason string) error {
		errs := make([]error, len(names))
		for i, name := range names {
			errs[i] = &source.CursorExpiredError{Table: name, Reason: reason}
		}
		return errors.Join(errs...)
	}
	var confirmed *string
	var walStatus *string
	err := s.pool.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, s.slot).Scan(&confirmed, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return all("replication slot " + s.slot + " does not exist in this database (dropped, or never created)")
	}
	if err != nil {
		return fmt.Errorf("postgres source %s: read slot %s: %w", s.where, s.slot, err)
	}
	if walStatus != nil && *walStatus == "lost" {
		return all("replication slot " + s.slot + " lost WAL it needed (max_slot_wal_keep_size)")
	}
	var flushed pglogrepl.LSN
	if confirmed != nil {
		if flushed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return fmt.Errorf("postgres source %s: slot %s: confirmed_flush_lsn %q: %w", s.where, s.slot, *confirmed, err)
		}
	}
	published := map[uint32]bool{}
	var allTables bool
	rows, err := s.pool.Query(ctx, `SELECT p.puballtables, r.prrelid FROM pg_publication p LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid WHERE p.pubname = $1`, s.pub)
	if err != nil {
		return fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
	}
	for rows.Next() {
		var rel *uint32
		if err := rows.Scan(&allTables, &rel); err != nil {
			return fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
		}
		if rel != nil {
			published[*rel] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
	}
	var errs []error
	for _, name := range names {
		for oid, tb := range st.tables {
			if tb.t.name != name {
				continue
			}
			switch {
			case tb.cursor < flushed:
				errs = append(errs, &source.CursorExpiredError{Table: name, Reason: fmt.Sprintf("slot %s already confirmed %s, past the table's cursor %s", s.slot, flushed, tb.cursor)})
			case !allTables && !published[oid]:
				errs = append(errs, &source.CursorExpiredError{Table: name, Reason: "the table is not in publication " + s.pub + ", so its changes were not kept"})
			}
		}
	}
	return errors.Join(errs...)
}

// flushLimit is what the slot may confirm given that emit accepted
// everything up to committed: no further than a hold of a copy no Stream
// includes yet.
func (s *Source) flushLimit(committed pglogrepl.LSN) pglogrepl.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := committed
	for _, h := range s.holds {
		if h < lim {
			lim = h
		}
	}
	if lim > s.confirmed {
		s.confirmed = lim
	}
	return lim
}

func (st *stream) status(reply bool) error {
	flush := st.s.flushLimit(pglogrepl.LSN(st.committed.Load()))
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: max(st.recvd, flush),
		WALFlushPosition: flush,
		WALApplyPosition: flush,
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("postgres source %s: send status to slot %s: %w", st.s.where, st.s.slot, err)
	}
	st.nextStat = time.Now().Add(statusInterval)
	return nil
}

func (st *stream) run(ctx context.Context) error {
	now := time.Now()
	st.nextStat = now.Add(statusInterval)
	// The first idle check comes soon, so that a caller waiting for the
	// stream to be current (sync --once) does not wait a whole interval.
	st.nextIdle = now.Add(batchWindow)
	// Receives take no context: with one, pgconn registers and removes a
	// cancellation for every message, a cost a bulk change pays a million
	// times. The connection's read deadline bounds each wait instead, and
	// ctx ending moves it into the past. The deadline is set before ctx is
	// checked, so an end of ctx after the check always lands last.
	nc := st.conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var set time.Time
	for {
		if st.joining.Load() {
			if err := st.join(ctx); err != nil {
				return err
			}
			set = time.Time{} // the wake-up moved the deadline
		}
		next := st.nextStat
		if len(st.batch.Changes) > 0 || st.batch.Schemas != nil {
			next = minTime(next, st.started.Add(batchWindow))
		} else if st.txn == nil {
			next = minTime(next, st.nextIdle)
		}
		if !next.Equal(set) {
			if err := nc.SetReadDeadline(next); err != nil {
				return fmt.Errorf("postgres source %s: slot %s: set read deadline: %w", st.s.where, st.s.slot, err)
			}
			set = next
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if st.joining.Load() {
			// Come after the deadline was set: take them first.
			continue
		}
		msg, err := st.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("postgres source %s: receive from slot %s: %w", st.s.where, st.s.slot, err)
			}
		}
		if err == nil {
			if err := st.message(ctx, msg); err != nil {
				return err
			}
		}
		now := time.Now()
		if (len(st.batch.Changes) > 0 || st.batch.Schemas != nil) && !now.Before(st.started.Add(batchWindow)) {
			if err := st.flush(ctx, false); err != nil {
				return err
			}
		}
		if st.txn == nil && len(st.batch.Changes) == 0 && !now.Before(st.nextIdle) {
			if !st.wantIdle {
				if err := st.s.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&st.idleTarget); err != nil {
					return fmt.Errorf("postgres source %s: read the WAL position: %w", st.s.where, err)
				}
			}
			st.wantIdle = true
			st.nextIdle = now.Add(idleInterval)
			if err := st.status(true); err != nil {
				return err
			}
		}
		if !now.Before(st.nextStat) {
			if err := st.status(false); err != nil {
				return err
			}
		}
	}
}

// join adds the tables StreamJoin was given to the stream (see StreamJoin),
// or returns an error wrapping source.ErrRestart for the first it cannot
// take in place.
func (st *stream) join(ctx context.Context) error {
	s := st.s
	st.joinMu.Lock()
	joins := st.joins
	st.joins = nil
	st.joining.Store(false)
	st.joinMu.Unlock()
	var names []string
	for _, cursors := range joins {
		for _, name := range slices.Sorted(maps.Keys(cursors)) {
			tt, err := s.streamTable(ctx, name, cursors[name])
			if err != nil {
				return err
			}
			if _, seen := st.rels[tt.t.oid]; seen || tt.cursor < st.from {
				return fmt.Errorf("postgres source %s: table %s joins the stream at %s, which may have read changes of it after that: %w", s.where, name, tt.cursor, source.ErrRestart)
			}
			st.tables[tt.t.oid] = tt
			st.top = max(st.top, tt.cursor)
			st.joined = append(st.joined, tt.t.oid)
			names = append(names, name)
		}
	}
	if err := st.check(ctx, names); err != nil {
		return err
	}
	s.log.Info("tables joined the stream", "slot", s.slot, "tables", names)
	return nil
}

// streamTable is table name as a stream follows it, from its cursor.
func (s *Source) streamTable(ctx context.Context, name, cursor string) (*streamTable, error) {
	lsn, err := lsnCursor(name, cursor)
	if err != nil {
		return nil, err
	}
	t, err := s.table(ctx, name)
	if err != nil {
		return nil, err
	}
	return &streamTable{t: t, cursor: lsn}, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (st *stream) message(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("postgres source %s: slot %s: %w", st.s.where, st.s.slot, err)
			}
			if st.txn == nil && ka.ServerWALEnd > st.pos && (st.pos < st.top || !time.Now().Before(st.nextAdvance)) {
				st.pos = ka.ServerWALEnd
				st.nextAdvance = time.Now().Add(idleAdvance)
			}
			st.recvd = max(st.recvd, ka.ServerWALEnd)
			if ka.ReplyRequested {
				if err := st.status(false); err != nil {
					return err
				}
			}
			now := time.Now()
			settled := ka.ServerWALEnd >= st.idleTarget || (ka.ServerWALEnd == st.lastKA && now.Sub(st.lastKAAt) >= idleInterval)
			if ka.ServerWALEnd != st.lastKA {
				st.lastKA, st.lastKAAt = ka.ServerWALEnd, now
			}
			if st.wantIdle && st.txn == nil && len(st.batch.Changes) == 0 {
				if !settled {
					// Still working through WAL: ask again soon.
					st.nextIdle = now.Add(batchWindow)
					return nil
				}
				st.wantIdle = false
				err := st.flush(ctx, false)
				st.nextIdle = now.Add(idleInterval)
				return err
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("postgres source %s: slot %s: %w", st.s.where, st.s.slot, err)
			}
			st.recvd = max(st.recvd, xld.WALStart)
			if len(xld.WALData) > 0 && (xld.WALData[0] == 'I' || xld.WALData[0] == 'U' || xld.WALData[0] == 'D') {
				if err := parseRow(xld.WALData, &st.row); err != nil {
					return fmt.Errorf("postgres source %s: slot %s: decode pgoutput message at %s: %w", st.s.where, st.s.slot, xld.WALStart, err)
				}
				return st.change(ctx, &st.row)
			}
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return fmt.Errorf("postgres source %s: slot %s: decode pgoutput message at %s: %w", st.s.where, st.s.slot, xld.WALStart, err)
			}
			return st.decoded(ctx, m)
		}
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("postgres source %s: slot %s: %w", st.s.where, st.s.slot, pgconn.ErrorResponseToPgError(msg))
	case *pgproto3.CopyDone:
		return fmt.Errorf("postgres source %s: slot %s: the server ended replication", st.s.where, st.s.slot)
	}
	return nil
}

func (st *stream) decoded(ctx context.Context, m pglogrepl.Message) error {
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		st.txn = &txnState{commit: m.FinalLSN}
	case *pglogrepl.RelationMessage:
		return st.relation(ctx, m)
	case *pglogrepl.TruncateMessage:
		// Every table truncated, CASCADE included (pgoutput names each
		// relation the statement emptied), gets a truncate in the
		// transaction's order: the lake empties it there (#15 case 4).
		for _, id := range m.RelationIDs {
			r, ok := st.deliver(id)
			if !ok {
				continue
			}
			for k := range st.recent {
				if k.oid == r.st.t.oid {
					delete(st.recent, k)
				}
			}
			if err := st.add(ctx, r, source.Change{Truncate: true}); err != nil {
				return err
			}
		}
	case *pglogrepl.CommitMessage:
		return st.commit(ctx, m)
	}
	return nil
}

// change handles an Insert, Update or Delete.
func (st *stream) change(ctx context.Context, m *rowMsg) error {
	r, ok := st.deliver(m.rel)
	if !ok {
		return nil
	}
	switch m.kind {
	case 'I':
		rw, err := st.tuple(r, m.new, nil)
		if err != nil {
			return err
		}
		return st.upsert(ctx, r, rw)
	case 'U':
		var oldKey []string
		if m.hasOld {
			k, err := st.key(r, m.old, nil)
			if err != nil {
				return err
			}
			oldKey = k
		}
		rw, err := st.tuple(r, m.new, oldKey)
		if err != nil {
			return err
		}
		if oldKey != nil && keyID(oldKey) != keyID(rw.key) {
			// The key changed: the old row is gone.
			if err := st.add(ctx, r, source.Change{ID: keyID(oldKey), Deleted: true}); err != nil {
				return err
			}
			delete(st.recent, recentKey{r.st.t.oid, keyID(oldKey)})
		}
		return st.upsert(ctx, r, rw)
	default:
		key, err := st.key(r, m.old, nil)
		if err != nil {
			return err
		}
		delete(st.recent, recentKey{r.st.t.oid, keyID(key)})
		return st.add(ctx, r, source.Change{ID: keyID(key), Deleted: true})
	}
}

// deliver returns the relation when its changes in the current transaction
// are to be delivered.
func (st *stream) deliver(id uint32) (*rel, bool) {
	r := st.rels[id]
	if r == nil || r.st == nil || st.txn == nil || st.txn.commit < r.st.cursor {
		return nil, false
	}
	return r, true
}

func (st *stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	s := st.s
	tb := st.tables[m.RelationID]
	r := &rel{st: tb}
	name := m.Namespace + "." + m.RelationName
	if tb != nil {
		name = tb.t.name
	}
	r.desc = &schema.Table{Name: strings.ToLower(name)}
	for _, c := range m.Columns {
		ct, err := s.types.column(ctx, s.pool, c.DataType, c.TypeModifier)
		if err != nil {
			return fmt.Errorf("postgres source %s: table %s: column %s: %w", s.where, name, c.Name, err)
		}
		col := ct.col
		col.Name = c.Name
		r.desc.Columns = append(r.desc.Columns, col)
		r.dec = append(r.dec, ct.dec)
		r.cols = append(r.cols, col.Name)
	}
	if tb == nil {
		st.rels[m.RelationID] = r
		return nil
	}
	prev := tb.t.desc
	if p := st.rels[m.RelationID]; p != nil {
		prev = p.desc
	}
	renamed, err := st.renames(ctx, tb, prev, r.desc)
	if err != nil {
		return err
	}
	r.desc.Renamed = renamed
	r.desc.SourceID = tb.t.desc.SourceID
	if err := st.columnIDs(ctx, tb, prev, r.desc); err != nil {
		return err
	}
	// The ids, where the catalog gave them, decide what was renamed.
	renamed = schema.Renames(prev, r.desc)
	r.desc.Renamed = renamed
	// The partition column is a column, not a name: it follows a rename
	// (the profile's stale name is resolved by id at the next start,
	// Source.partitionColumn).
	r.desc.PartitionColumn = renamedTo(prev, r.desc, prev.PartitionColumn)
	if r.desc.PartitionColumn != prev.PartitionColumn {
		s.log.Warn("the partition column was renamed at the source: the table stays partitioned by it; set partition_column to its new name in the link profile",
			"table", name, "from", prev.PartitionColumn, "to", r.desc.PartitionColumn)
	}
	for _, k := range prev.Key {
		r.desc.Key = append(r.desc.Key, renamedTo(prev, r.desc, k))
	}
	for _, k := range r.desc.Key {
		i := slices.IndexFunc(r.desc.Columns, func(c schema.Column) bool { return c.Name == k })
		if i < 0 {
			return &ReinitError{Table: name, Column: k, From: "key column", To: "dropped"}
		}
		r.key = append(r.key, i)
	}
	if err := compatible(name, withRenames(prev, renamed), r.desc); err != nil {
		return err
	}
	// The first Relation of a session always goes out: the lake may hold a
	// shape older than the one this session starts with. A description
	// not yet delivered passes its renames on (mergeSchema).
	p := st.rels[m.RelationID]
	r.schemaDue = p == nil || p.schemaDue || !sameShape(prev, r.desc)
	if p != nil && p.schemaDue && len(p.desc.Renamed) > 0 {
		r.desc.Renamed = composeRenames(p.desc.Renamed, r.desc.Renamed)
	}
	st.rels[m.RelationID] = r
	return nil
}

// renamedTo returns the name in cur of prev's column name: the column of
// cur with its id, else its new name when cur.Renamed has one, else name.
func renamedTo(prev, cur *schema.Table, name string) string {
	if c, ok := prev.Column(name); ok && c.SourceID != 0 && prev.SourceID == cur.SourceID {
		for _, n := range cur.Columns {
			if n.SourceID == c.SourceID {
				return n.Name
			}
		}
	}
	if to, ok := cur.Renamed[name]; ok {
		return to
	}
	return name
}

// columnIDs gives cur, a new Relation message's description of table
// tb, its columns' attnums (schema.Column.SourceID), which pgoutput does
// not send: a column of prev (the description before it) keeps its id
// under its name, or under its new name when cur.Renamed says it was
// renamed. When a column is new, the catalog gives every id, provided it
// lists the same columns in the same order as the message (attnum order);
// otherwise the table changed again since, and the new columns' ids stay
// 0 (unknown: the lake matches them by name, and the next description
// from the catalog records them).
func (st *stream) columnIDs(ctx context.Context, tb *streamTable, prev, cur *schema.Table) error {
	ids := make(map[string]int, len(prev.Columns))
	if prev.SourceID == cur.SourceID {
		for _, c := range prev.Columns {
			name := c.Name
			if to, ok := cur.Renamed[name]; ok {
				name = to
			}
			ids[name] = c.SourceID
		}
	}
	known := true
	for i := range cur.Columns {
		cur.Columns[i].SourceID = ids[cur.Columns[i].Name]
		known = known && cur.Columns[i].SourceID != 0
	}
	if known {
		return nil
	}
	all, err := st.attributes(ctx, tb)
	if err != nil {
		return err
	}
	// The columns pgoutput sends.
	attrs := slices.DeleteFunc(all, func(a attribute) bool { return a.dropped || a.generated })
	if !slices.EqualFunc(attrs, cur.Columns, func(a attribute, c schema.Column) bool { return a.name == c.Name }) {
		return nil
	}
	for i, a := range attrs {
		cur.Columns[i].SourceID = int(a.num)
	}
	return nil
}

// attribute is one column of a table as the catalog has it now.
type attribute struct {
	name               string
	num                int16
	dropped, generated bool
}

// attributes reads tb's columns from the catalog, dropped ones included,
// in attnum order.
func (st *stream) attributes(ctx context.Context, tb *streamTable) ([]attribute, error) {
	rows, err := st.s.pool.Query(ctx, `SELECT attname::text, attnum, attisdropped, attgenerated <> '' FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 ORDER BY attnum`, tb.t.oid)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: read the columns from the catalog: %w", st.s.where, tb.t.name, err)
	}
	attrs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (attribute, error) {
		var a attribute
		return a, r.Scan(&a.name, &a.num, &a.dropped, &a.generated)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: read the columns from the catalog: %w", st.s.where, tb.t.name, err)
	}
	return attrs, nil
}

// renames tells which columns of cur, a new Relation message's
// description of table t, are columns of prev renamed (#15 case 5).
// pgoutput lists the columns in attnum order without attnums, so a rename
// keeps the column's position while a drop and an add moves the new column
// to the end: columns that differ by name at the same position, with the
// same count and every other name in place, are renamed. At the last
// position both look the same; the catalog tells them apart: after a drop
// the old column's attribute (attisdropped) lies between the column before
// and the new one. When the catalog no longer names the new column (it
// changed again since), the change is taken as a drop and an add, and a
// warning says so.
func (st *stream) renames(ctx context.Context, tb *streamTable, prev, cur *schema.Table) (map[string]string, error) {
	if len(prev.Columns) != len(cur.Columns) {
		return nil, nil
	}
	has := func(t *schema.Table, name string) bool { _, ok := t.Column(name); return ok }
	out := map[string]string{}
	for i, c := range cur.Columns {
		from := prev.Columns[i].Name
		if from == c.Name {
			continue
		}
		if has(cur, from) || has(prev, c.Name) {
			return nil, nil // columns moved: not renames alone
		}
		out[from] = c.Name
	}
	last := len(cur.Columns) - 1
	if len(out) == 0 || out[prev.Columns[last].Name] == "" {
		return nilIfEmpty(out), nil
	}
	attrs, err := st.attributes(ctx, tb)
	if err != nil {
		return nil, err
	}
	newName, before := cur.Columns[last].Name, ""
	if last > 0 {
		before = cur.Columns[last-1].Name
	}
	rename, seenBefore, found := true, before == "", false
	for _, a := range attrs {
		switch {
		case !a.dropped && a.name == before:
			seenBefore = true
		case !a.dropped && a.name == newName:
			found = true
		case a.dropped && seenBefore && !found:
			rename = false
		}
		if found {
			break
		}
	}
	if !found || !seenBefore {
		st.s.log.Warn("a column of the table changed name at the last position, and the catalog changed again since: taken as a dropped and an added column", "table", tb.t.name, "from", prev.Columns[last].Name, "to", newName)
		rename = false
	}
	if !rename {
		delete(out, prev.Columns[last].Name)
	}
	return nilIfEmpty(out), nil
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// withRenames returns t with its columns renamed.
func withRenames(t *schema.Table, renamed map[string]string) *schema.Table {
	if len(renamed) == 0 {
		return t
	}
	c := *t
	c.Columns = slices.Clone(t.Columns)
	for i := range c.Columns {
		if to, ok := renamed[c.Columns[i].Name]; ok {
			c.Columns[i].Name = to
		}
	}
	return &c
}

// composeRenames returns the renames a then b (old name to newest).
func composeRenames(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for from, to := range a {
		if next, ok := b[to]; ok {
			to = next
		}
		out[from] = to
	}
	for from, to := range b {
		if !slices.Contains(slices.Collect(maps.Values(a)), from) {
			out[from] = to
		}
	}
	return out
}

// mergeSchema records d as table's description in m (created when nil by
// the caller), keeping the renames of a description it replaces that was
// never delivered.
func mergeSchema(m map[string]*schema.Table, table string, d *schema.Table) {
	if old := m[table]; old != nil && len(old.Renamed) > 0 {
		c := *d
		c.Renamed = composeRenames(old.Renamed, d.Renamed)
		d = &c
	}
	m[table] = d
}

// compatible accepts added and dropped columns and widening (longer
// strings, more decimal digits); any other change of a column needs a
// re-initialisation.
func compatible(table string, old, cur *schema.Table) error {
	for _, c := range cur.Columns {
		o, ok := old.Column(c.Name)
		if !ok {
			continue
		}
		narrower := o.Type != c.Type ||
			(c.MaxLength != 0 && (o.MaxLength == 0 || c.MaxLength < o.MaxLength)) ||
			(c.Type == schema.Decimal && (c.Scale != o.Scale || (c.Precision != 0 && (o.Precision == 0 || c.Precision < o.Precision))))
		if narrower {
			return &ReinitError{Table: table, Column: c.Name, From: o.SourceType, To: c.SourceType}
		}
	}
	return nil
}

func sameShape(a, b *schema.Table) bool {
	return slices.EqualFunc(a.Columns, b.Columns, func(x, y schema.Column) bool {
		return x.Name == y.Name && x.Type == y.Type && x.MaxLength == y.MaxLength && x.Precision == y.Precision && x.Scale == y.Scale && x.SourceType == y.SourceType
	})
}

// row is a decoded tuple.
type row struct {
	vals  []any    // by column of the relation (rel.cols)
	key   []string // the text of the key columns
	toast []int    // columns pgoutput left out as unchanged TOASTed values
	size  int      // bytes of the string values in vals
}

// tuple decodes a tuple of r. A key column left out is taken from oldKey
// (it is unchanged).
func (st *stream) tuple(r *rel, cols []tupleCol, oldKey []string) (row, error) {
	name := r.st.t.name
	if len(cols) != len(r.desc.Columns) {
		return row{}, fmt.Errorf("postgres source %s: table %s: change has a different column count than its Relation message", st.s.where, name)
	}
	rw := row{vals: make([]any, len(cols))}
	for i, c := range cols {
		col := r.cols[i]
		switch c.kind {
		case colNull:
		case colToast:
			rw.toast = append(rw.toast, i)
		case colText:
			v, err := r.dec[i].decode(c.data)
			if err != nil {
				return row{}, fmt.Errorf("postgres source %s: table %s: column %s (%s): %w", st.s.where, name, col, r.desc.Columns[i].SourceType, err)
			}
			if s, ok := v.(string); ok {
				rw.size += len(s)
			}
			rw.vals[i] = v
		default:
			return row{}, fmt.Errorf("postgres source %s: table %s: column %s: unexpected tuple data kind %q", st.s.where, name, col, c.kind)
		}
	}
	var err error
	if rw.key, err = st.key(r, cols, oldKey); err != nil {
		return row{}, err
	}
	return rw, nil
}

// key returns the text of r's key columns in a tuple (an old tuple may
// hold only them). A key column left out is taken from oldKey.
func (st *stream) key(r *rel, cols []tupleCol, oldKey []string) ([]string, error) {
	if len(cols) != len(r.desc.Columns) {
		return nil, fmt.Errorf("postgres source %s: table %s: change has a different column count than its Relation message", st.s.where, r.st.t.name)
	}
	key := make([]string, len(r.key))
	for j, i := range r.key {
		c := cols[i]
		switch {
		case c.kind == colText:
			key[j] = string(c.data)
		case c.kind == colToast && oldKey != nil:
			key[j] = oldKey[j]
		default:
			return nil, fmt.Errorf("postgres source %s: table %s: key column %s has no value in the change (a TOASTed key value pgoutput did not resend); keys longer than about 2 kB are not supported", st.s.where, r.st.t.name, r.desc.Columns[i].Name)
		}
	}
	return key, nil
}

// upsert delivers an inserted or updated row, first filling in unchanged
// TOASTed columns.
//
// Why reading them is correct. pgoutput leaves out a TOASTed value the
// transaction did not change. The value is then the one of the row's
// previous version: taken from the recent values this stream delivered for
// the key when it has them, else read from the table by key now. The table
// may have moved on since this transaction (the stream runs behind): the
// value read then belongs to a later transaction. That later transaction is
// itself in the stream after this one, with a higher version, and carries
// (or resolves the same way) its own value for the column, so the last
// version the lake keeps is right: the lake converges on the source. Only an
// intermediate version may show a value newer than its own. A row deleted
// since reads as absent: its columns stay NULL in this version, and the
// delete that follows in the stream removes it.
func (st *stream) upsert(ctx context.Context, r *rel, rw row) error {
	id, vals := keyID(rw.key), rw.vals
	size := rw.size
	rk := recentKey{r.st.t.oid, id}
	if len(rw.toast) > 0 {
		prev := st.recent[rk]
		var missing []int
		for _, i := range rw.toast {
			if v, ok := prev.value(r.cols, i); ok {
				vals[i] = v
			} else {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			if err := st.readColumns(ctx, r, rw.key, missing, vals); err != nil {
				return err
			}
		}
		for _, i := range rw.toast {
			if s, ok := vals[i].(string); ok {
				size += len(s)
			}
		}
	}
	if size >= recentMinBytes {
		if len(st.recent) >= recentRows {
			clear(st.recent)
		}
		st.recent[rk] = recentRow{cols: r.cols, vals: vals}
	} else {
		delete(st.recent, rk)
	}
	return st.add(ctx, r, source.Change{ID: id, Columns: r.cols, Values: vals})
}

// readColumns reads the current values of the columns cols (positions in
// r.cols) of the row with key into vals.
//
// A column may have been dropped since the transaction that left it out
// (the stream runs behind the catalog): it reads as NULL, as every dropped
// column does from its drop on, and the stream goes on. The Relation message
// that follows the drop removes it from the description.
func (st *stream) readColumns(ctx context.Context, r *rel, key []string, cols []int, vals []any) error {
	err := st.readExisting(ctx, r, key, cols, vals)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42703" { // undefined_column
		return err
	}
	t := r.st.t
	names := make([]string, len(cols))
	for j, i := range cols {
		names[j] = r.cols[i]
	}
	var live []string
	if err := st.s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(attname::text), '{}') FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attname = ANY($2)`, t.oid, names).Scan(&live); err != nil {
		return fmt.Errorf("postgres source %s: table %s: look up columns %v: %w", st.s.where, t.name, names, err)
	}
	var kept []int
	for j, i := range cols {
		if slices.Contains(live, names[j]) {
			kept = append(kept, i)
		} else {
			st.s.log.Info("an unchanged TOASTed column was dropped before the stream read it: NULL in this version", "table", t.name, "column", names[j])
			vals[i] = nil
		}
	}
	if len(kept) == len(cols) {
		return err
	}
	if len(kept) == 0 {
		return nil
	}
	return st.readColumns(ctx, r, key, kept, vals)
}

// readExisting is readColumns for columns that all exist.
func (st *stream) readExisting(ctx context.Context, r *rel, key []string, cols []int, vals []any) error {
	t := r.st.t
	names := make([]string, len(cols))
	var q strings.Builder
	q.WriteString("SELECT ")
	for j, i := range cols {
		if j > 0 {
			q.WriteString(", ")
		}
		names[j] = r.cols[i]
		q.WriteString(pgx.Identifier{names[j]}.Sanitize())
	}
	q.WriteString(" FROM " + t.qualified + " WHERE ")
	params := make([][]byte, len(key))
	for j, i := range r.key {
		if j > 0 {
			q.WriteString(" AND ")
		}
		fmt.Fprintf(&q, "%s = $%d", pgx.Identifier{r.desc.Columns[i].Name}.Sanitize(), j+1)
		params[j] = []byte(key[j])
	}
	conn, err := st.s.pool.Acquire(ctx)
	if err != nil {
		return st.s.connectError(err)
	}
	defer conn.Release()
	// Parameter types are left to the server (OID 0), which infers the key
	// columns' types from the comparison, so the key index serves the read.
	rr := conn.Conn().PgConn().ExecParams(ctx, q.String(), params, make([]uint32, len(params)), nil, nil)
	found := false
	for rr.NextRow() {
		found = true
		for j, raw := range rr.Values() {
			var v any
			if raw != nil {
				if v, err = r.dec[cols[j]].decode(raw); err != nil {
					_, _ = rr.Close()
					return fmt.Errorf("postgres source %s: table %s: column %s: %w", st.s.where, t.name, names[j], err)
				}
			}
			vals[cols[j]] = v
		}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("postgres source %s: table %s: read unchanged TOASTed columns %v: %w", st.s.where, t.name, names, err)
	}
	if !found {
		for _, i := range cols {
			vals[i] = nil
		}
	}
	return nil
}

// add appends a change to the current transaction.
func (st *stream) add(ctx context.Context, r *rel, ch source.Change) error {
	txn := st.txn
	ch.Table = r.st.t.name
	txn.seq = min(txn.seq+1, txnVersions-1)
	ch.Version = int64(txn.commit)<<16 + txn.seq
	if r.schemaDue {
		if txn.schemas == nil {
			txn.schemas = map[string]*schema.Table{}
		}
		mergeSchema(txn.schemas, ch.Table, r.desc)
		r.schemaDue = false
	}
	txn.changes = append(txn.changes, ch)
	part := partFactor * st.s.cfg.BatchRows
	if len(txn.changes) <= part || (!txn.split && len(txn.changes) <= splitFactor*st.s.cfg.BatchRows) {
		return nil
	}
	// A huge transaction: emit what came before it, then its changes so far
	// in parts without cursors, so a restart replays the whole transaction.
	// The last change stays behind: the commit's batch, which carries the
	// cursors, always has changes of the transaction.
	if !txn.split && (len(st.batch.Changes) > 0 || st.batch.Schemas != nil) {
		if err := st.flush(ctx, false); err != nil {
			return err
		}
	}
	txn.split = true
	for len(txn.changes) > part {
		st.batch = source.Batch{Changes: txn.changes[:part:part], Schemas: txn.schemas}
		txn.changes, txn.schemas = txn.changes[part:], nil
		if err := st.flush(ctx, true); err != nil {
			return err
		}
	}
	// Copied, so that the parts' array can be freed; the next part is
	// likely full size too.
	txn.changes = append(make([]source.Change, 0, part+1), txn.changes...)
	return nil
}

func (st *stream) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	txn := st.txn
	st.txn = nil
	if txn == nil {
		return nil
	}
	st.pos = max(st.pos, m.TransactionEndLSN)
	if len(txn.changes) == 0 && txn.schemas == nil {
		return nil
	}
	if len(st.batch.Changes) == 0 && st.batch.Schemas == nil {
		st.started = time.Now()
	}
	if len(st.batch.Changes) == 0 {
		st.batch.Changes = txn.changes
	} else {
		st.batch.Changes = append(st.batch.Changes, txn.changes...)
	}
	for k, v := range txn.schemas {
		if st.batch.Schemas == nil {
			st.batch.Schemas = map[string]*schema.Table{}
		}
		mergeSchema(st.batch.Schemas, k, v)
	}
	if len(st.batch.Changes) >= st.s.cfg.BatchRows {
		return st.flush(ctx, false)
	}
	return nil
}

// flush hands the pending batch to the emitter. A complete batch carries
// cursors for every table of the stream; a part of a transaction none.
//
// Only a batch with a Position moves the slot's confirmed position: until
// the stream reaches the highest cursor it started from (a table that just
// joined, copied at a later point), the engine commits only the cursors of
// tables with changes, so the slot must stay where every table's committed
// cursor still is.
func (st *stream) flush(ctx context.Context, partial bool) error {
	ob := outBatch{batch: st.batch}
	ob.batch.Partial = partial
	if !partial {
		ob.batch.Cursors = make(map[string]string, len(st.tables))
		for _, tb := range st.tables {
			ob.batch.Cursors[tb.t.name] = max(tb.cursor, st.pos).String()
		}
		if st.pos >= st.top {
			ob.pos = st.pos
			ob.batch.Position = st.pos.String()
			ob.unhold, st.joined = st.joined, nil
		}
	}
	st.batch = source.Batch{}
	// Check whether the stream is current soon after changes stop, then
	// every idleInterval while idle.
	st.nextIdle = time.Now().Add(batchWindow)
	return st.send(ctx, ob)
}

// send waits for room at the emitter, keeping the slot informed meanwhile.
func (st *stream) send(ctx context.Context, ob outBatch) error {
	for {
		select {
		case st.out <- ob:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(st.nextStat)):
			if err := st.status(false); err != nil {
				return err
			}
		}
	}
}
