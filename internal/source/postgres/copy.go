package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/lakelink/lakelink/internal/source"
)

// How the initial copy stays consistent with the change stream.
//
// A copy reads its table under a snapshot exported by CREATE_REPLICATION_SLOT
// ... EXPORT_SNAPSHOT. That snapshot holds exactly the transactions that
// committed before the slot's consistent point (CP); the slot decodes exactly
// those that commit at or after it. So "copy under the snapshot, then stream
// transactions with commit LSN >= CP" neither loses nor duplicates a change.
//
// The first copy of a link creates the link's slot and keeps the exporting
// replication connection open and idle (the snapshot lives only as long as
// that connection runs no other command). Copies starting while it lives and
// whose table was in the publication when the slot was created share it. A
// copy that cannot share it (the slot already exists because lakelink
// restarted, a table was added to the link, a table is re-initialised)
// creates a TEMPORARY slot only to get its own (snapshot, CP) pair; the
// link's slot then streams that table from CP. For that to work the link's
// slot must not confirm past CP before a Stream includes the table: Copy
// registers a hold that Stream respects (see Source.flushLimit).
//
// An exported snapshot dies with its process. A Copy resuming under a cursor
// whose snapshot is gone returns a *source.CursorExpiredError; the engine then
// copies the table afresh under a new snapshot with a new CP, and the stream
// picks the table up from that CP.

// exportIdle is how long an exported snapshot outlives its last copy, so a
// copy retried soon after a failure can still resume under it.
const exportIdle = 30 * time.Second

// export is one exported snapshot and the replication connection keeping it.
type export struct {
	conn     *pgconn.PgConn
	snapshot string
	lsn      pglogrepl.LSN
	// published holds the tables the publication had when the slot was
	// created; all is set for FOR ALL TABLES publications.
	published map[uint32]bool
	all       bool
	// copied holds the tables a fresh copy started under this snapshot: a
	// table copied afresh again (after a TRUNCATE, say) needs a newer one.
	copied map[uint32]bool
	users  int
	timer  *time.Timer
}

func (e *export) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.conn.Close(ctx)
}

func (e *export) covers(oid uint32) bool { return e.all || e.published[oid] }

// replConn opens a logical replication connection.
func (s *Source) replConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg := s.connCfg.Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, s.connectError(err)
	}
	return conn, nil
}

// ensurePublished makes sure the publication exists and holds t. lakelink
// creates and extends only publications it created (marked by their
// comment); a user's publication that lacks the table is an error.
func (s *Source) ensurePublished(ctx context.Context, t *table) error {
	var comment *string
	var has, all bool
	err := s.pool.QueryRow(ctx, `
		SELECT obj_description(p.oid, 'pg_publication'), p.puballtables,
		       EXISTS (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = $2)
		FROM pg_publication p WHERE p.pubname = $1`, s.pub, t.oid).Scan(&comment, &all, &has)
	pub := pgx.Identifier{s.pub}.Sanitize()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		tables := []string{t.qualified}
		for _, tc := range s.cfg.Tables {
			ct, err := s.table(ctx, tc.Name)
			if err != nil {
				// That table fails alone; it joins the publication
				// when it is copied (ALTER PUBLICATION ... ADD TABLE).
				continue
			}
			if ct.oid != t.oid {
				tables = append(tables, ct.qualified)
			}
		}
		if _, err := s.pool.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(tables, ", ")); err != nil {
			return s.pubError(t, "create publication "+s.pub, err)
		}
		if _, err := s.pool.Exec(ctx, "COMMENT ON PUBLICATION "+pub+" IS "+quoteLiteral(pubComment+s.cfg.Link)); err != nil {
			return s.pubError(t, "comment on publication "+s.pub, err)
		}
		s.log.Info("created publication", "publication", s.pub, "tables", len(tables))
		return nil
	case err != nil:
		return fmt.Errorf("postgres source %s: table %s: read publication %s: %w", s.where, t.name, s.pub, err)
	case has || all:
		return nil
	case comment == nil || !strings.HasPrefix(*comment, pubComment):
		return fmt.Errorf("postgres source %s: table %s is not in publication %s, which lakelink did not create and leaves alone; run ALTER PUBLICATION %s ADD TABLE %s", s.where, t.name, s.pub, pub, t.qualified)
	}
	if _, err := s.pool.Exec(ctx, "ALTER PUBLICATION "+pub+" ADD TABLE "+t.qualified); err != nil {
		return s.pubError(t, "add the table to publication "+s.pub, err)
	}
	s.log.Info("added table to publication", "publication", s.pub, "table", t.name)
	return nil
}

// pubComment marks publications lakelink created (and may alter and drop).
const pubComment = "created by lakelink for link "

func (s *Source) pubError(t *table, what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("%w: table %s: %s: %s; publishing a table needs its owner (or a superuser) and CREATE on the database: grant those, or create the publication yourself (CREATE PUBLICATION %s FOR TABLE ...) and name it in the link", ErrPrivilege, t.name, what, pgErr.Message, pgx.Identifier{s.pub}.Sanitize())
	}
	return fmt.Errorf("postgres source %s: table %s: %s: %w", s.where, t.name, what, err)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// acquireExport returns an exported snapshot under which t can be copied and
// registers a hold on its consistent point for t.
func (s *Source) acquireExport(ctx context.Context, t *table) (*export, error) {
	if e := s.shareExport(t, ""); e != nil {
		return e, nil
	}
	var pubAll bool
	published := map[uint32]bool{}
	rows, err := s.pool.Query(ctx, `
		SELECT p.puballtables, r.prrelid FROM pg_publication p
		LEFT JOIN pg_publication_rel r ON r.prpubid = p.oid WHERE p.pubname = $1`, s.pub)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
	}
	for rows.Next() {
		var rel *uint32
		if err := rows.Scan(&pubAll, &rel); err != nil {
			return nil, fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
		}
		if rel != nil {
			published[*rel] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
	}
	var slotExists bool
	var slotDB *string
	err = s.pool.QueryRow(ctx, `SELECT database FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&slotDB)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("postgres source %s: read replication slots: %w", s.where, err)
	case slotDB == nil || *slotDB != s.connCfg.Database:
		return nil, fmt.Errorf("postgres source %s: replication slot %s already exists for another database or is physical; slot names are cluster-wide: name another slot in the link", s.where, s.slot)
	default:
		slotExists = true
	}
	// Until the new snapshot's consistent point is known, hold the slot
	// where it is: a Stream running meanwhile must not confirm past the
	// point the new copy will need.
	s.mu.Lock()
	s.holds[t.oid] = s.confirmed
	s.mu.Unlock()
	conn, err := s.replConn(ctx)
	if err != nil {
		return nil, err
	}
	name, opts := s.slot, pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication}
	if slotExists {
		s.mu.Lock()
		s.seq++
		name = fmt.Sprintf("%s_c%d_%d", s.slot, os.Getpid(), s.seq)
		s.mu.Unlock()
		opts.Temporary = true
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput", opts)
	if err != nil {
		_ = conn.Close(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53400" {
			return nil, fmt.Errorf("postgres source %s: table %s: create replication slot %s: %s; raise max_replication_slots (each copy running while the link's slot exists uses a temporary one)", s.where, t.name, name, pgErr.Message)
		}
		return nil, fmt.Errorf("postgres source %s: table %s: create replication slot %s: %w", s.where, t.name, name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("postgres source %s: slot %s: consistent point %q: %w", s.where, name, res.ConsistentPoint, err)
	}
	s.log.Info("exported snapshot", "slot", name, "temporary", opts.Temporary, "snapshot", res.SnapshotName, "lsn", lsn.String())
	e := &export{conn: conn, snapshot: res.SnapshotName, lsn: lsn, published: published, all: pubAll, copied: map[uint32]bool{}}
	s.mu.Lock()
	s.exports[e.snapshot] = e
	s.mu.Unlock()
	if shared := s.shareExport(t, e.snapshot); shared != nil {
		return shared, nil
	}
	return nil, fmt.Errorf("postgres source %s: table %s: the slot confirmed past the new snapshot's consistent point at once; retry", s.where, t.name)
}

// shareExport returns a live export that can serve t (the one named
// snapshot to resume a copy, or, when snapshot is empty, any under which t
// was not copied yet), counting t's copy as a user and
// holding the slot at its consistent point; nil when there is none. An
// export whose consistent point the link's slot has confirmed past cannot
// serve: the stream would no longer have the changes that follow it.
func (s *Source) shareExport(t *table, snapshot string) *export {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.exports {
		if (snapshot != "" && e.snapshot != snapshot) || (snapshot == "" && e.copied[t.oid]) || !e.covers(t.oid) || e.lsn < s.confirmed {
			continue
		}
		e.copied[t.oid] = true
		e.users++
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		s.holds[t.oid] = e.lsn
		return e
	}
	return nil
}

// unhold drops the hold of a failed copy, so a table the engine gives up on
// does not pin the slot (and the WAL it retains) forever. A copy retried
// under the same snapshot registers it again, unless the slot moved past it
// meanwhile, in which case the retry is refused as expired.
func (s *Source) unhold(oid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holds, oid)
}

func (s *Source) releaseExport(e *export) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.users--
	if e.users > 0 {
		return
	}
	e.timer = time.AfterFunc(exportIdle, func() {
		s.mu.Lock()
		if e.users > 0 || s.exports[e.snapshot] != e {
			s.mu.Unlock()
			return
		}
		delete(s.exports, e.snapshot)
		s.mu.Unlock()
		e.close()
	})
}

// copyCursor is the resume position of an unfinished copy. Chunks below
// DoneBelow are done; Progress holds, for started chunks above, the ctid of
// the last row emitted, or "done".
type copyCursor struct {
	Snapshot   string         `json:"snapshot"`
	LSN        string         `json:"lsn"`
	ChunkPages int64          `json:"chunk_pages"`
	Chunks     int            `json:"chunks"`
	DoneBelow  int            `json:"done_below"`
	Progress   map[int]string `json:"progress,omitempty"`
}

const chunkDone = "done"

var (
	snapshotRE = regexp.MustCompile(`^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$`)
	ctidRE     = regexp.MustCompile(`^\([0-9]+,[0-9]+\)$`)
)

func parseCopyCursor(s string) (copyCursor, error) {
	var c copyCursor
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("not a copy cursor: %w", err)
	}
	if !snapshotRE.MatchString(c.Snapshot) || c.Chunks < 1 || c.ChunkPages < 0 || c.DoneBelow < 0 || c.DoneBelow > c.Chunks {
		return c, errors.New("copy cursor has invalid fields")
	}
	if _, err := pglogrepl.ParseLSN(c.LSN); err != nil {
		return c, fmt.Errorf("copy cursor LSN: %w", err)
	}
	for k, v := range c.Progress {
		if k < c.DoneBelow || k >= c.Chunks || (v != chunkDone && !ctidRE.MatchString(v)) {
			return c, errors.New("copy cursor has invalid progress")
		}
	}
	return c, nil
}

// Chunking: tables above minChunkPages are split into about 4 chunks per
// worker, of at least minChunkPages pages, copied in parallel by ctid range
// (TID range scans read only their pages).
const minChunkPages = 1024

func planChunks(pages int64, workers int) (chunkPages int64, chunks int) {
	if pages <= minChunkPages {
		return 0, 1
	}
	chunkPages = max(minChunkPages, (pages+int64(workers)*4-1)/(int64(workers)*4))
	return chunkPages, int((pages + chunkPages - 1) / chunkPages)
}

// chunkBatch is what a copy worker hands the emitter.
type chunkBatch struct {
	chunk   int
	changes []source.Change
	last    string // ctid of the last row
	done    bool
}

// Copy copies table under an exported snapshot; see the comment at the top
// of this file. Every row gets Version = CP << 16, below the version of any
// change the stream delivers for the table (commit LSN >= CP, low bits >= 1).
func (s *Source) Copy(ctx context.Context, name string, resume string, emit func(context.Context, source.Batch) error) (err error) {
	t, err := s.table(ctx, name)
	if err != nil {
		return err
	}
	var cur copyCursor
	var e *export
	if resume != "" {
		if cur, err = parseCopyCursor(resume); err != nil {
			return &source.CursorExpiredError{Table: name, Reason: err.Error()}
		}
		if e = s.shareExport(t, cur.Snapshot); e == nil {
			return &source.CursorExpiredError{Table: name, Reason: "the snapshot the copy ran under is gone (lakelink restarted, or the copy paused for over " + exportIdle.String() + ")"}
		}
	} else {
		// Copies started together share one publication and, where they
		// can, one exported snapshot: set them up one at a time.
		s.setup.Lock()
		err := s.ensurePublished(ctx, t)
		if err == nil {
			e, err = s.acquireExport(ctx, t)
		}
		s.setup.Unlock()
		if err != nil {
			s.unhold(t.oid)
			return err
		}
	}
	defer s.releaseExport(e)
	defer func() {
		if err != nil {
			s.unhold(t.oid)
		}
	}()

	// The coordinating transaction holds an ACCESS SHARE lock for the whole
	// copy, so no VACUUM FULL, CLUSTER or rewriting ALTER TABLE moves rows
	// between ctid ranges while workers read them. It also reads chunks
	// itself, so a copy always progresses on one connection even when the
	// pool has none to spare for extra workers (many tables copying at once).
	coord, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.connectError(err)
	}
	defer coord.Release()
	tx, err := s.snapshotTx(ctx, coord.Conn(), t, e.snapshot)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+t.qualified+" IN ACCESS SHARE MODE"); err != nil {
		return fmt.Errorf("postgres source %s: table %s: lock for copy: %w", s.where, name, err)
	}
	if resume == "" {
		var pages int64
		if err := tx.QueryRow(ctx, `SELECT pg_relation_size($1::oid) / current_setting('block_size')::int`, t.oid).Scan(&pages); err != nil {
			return fmt.Errorf("postgres source %s: table %s: read size: %w", s.where, name, err)
		}
		cur = copyCursor{Snapshot: e.snapshot, LSN: e.lsn.String()}
		cur.ChunkPages, cur.Chunks = planChunks(pages, s.cfg.CopyWorkers)
		s.log.Info("copy started", "table", name, "pages", pages, "chunks", cur.Chunks, "lsn", cur.LSN)
	}
	if cur.Progress == nil {
		cur.Progress = map[int]string{}
	}
	return s.copyChunks(ctx, t, e, tx, &cur, emit)
}

// snapshotTx begins a read-only REPEATABLE READ transaction under snapshot.
func (s *Source) snapshotTx(ctx context.Context, conn *pgx.Conn, t *table, snapshot string) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: table %s: begin copy transaction: %w", s.where, t.name, err)
	}
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
		_ = tx.Rollback(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "22023" || pgErr.Code == "0A000") {
			return nil, &source.CursorExpiredError{Table: t.name, Reason: "snapshot " + snapshot + " is gone: " + pgErr.Message}
		}
		return nil, fmt.Errorf("postgres source %s: table %s: import snapshot: %w", s.where, t.name, err)
	}
	return tx, nil
}

func (s *Source) copyChunks(ctx context.Context, t *table, e *export, coord pgx.Tx, cur *copyCursor, emit func(context.Context, source.Batch) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(cctx)
	next := make(chan int)
	results := make(chan chunkBatch, s.cfg.CopyWorkers)
	// handedOut ends when every chunk has a worker: extra workers still
	// waiting for a connection then give up.
	handedOut, allHandedOut := context.WithCancel(gctx)
	defer allHandedOut()
	g.Go(func() error {
		defer close(next)
		defer allHandedOut()
		for c := cur.DoneBelow; c < cur.Chunks; c++ {
			if cur.Progress[c] == chunkDone {
				continue
			}
			select {
			case next <- c:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	after := make(map[int]string, len(cur.Progress))
	for c, p := range cur.Progress {
		after[c] = p
	}
	// Rows must come in ctid order for the resume position to mean
	// anything: no synchronized scan starting mid-table, no parallel
	// workers interleaving pages.
	work := func(tx pgx.Tx) error {
		if _, err := tx.Exec(gctx, "SET LOCAL synchronize_seqscans = off; SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
			return fmt.Errorf("postgres source %s: table %s: set copy options: %w", s.where, t.name, err)
		}
		for c := range next {
			if err := s.copyChunk(gctx, tx, t, e, cur, c, after[c], results); err != nil {
				return err
			}
		}
		return nil
	}
	g.Go(func() error { return work(coord) })
	for range min(s.cfg.CopyWorkers, cur.Chunks) - 1 {
		g.Go(func() error {
			conn, err := s.pool.Acquire(handedOut)
			if err != nil {
				if handedOut.Err() != nil && gctx.Err() == nil {
					return nil
				}
				return s.connectError(err)
			}
			defer conn.Release()
			tx, err := s.snapshotTx(gctx, conn.Conn(), t, e.snapshot)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(gctx)) }()
			return work(tx)
		})
	}
	var werr error
	waited := make(chan struct{})
	go func() {
		werr = g.Wait()
		close(results)
		close(waited)
	}()
	var emitErr error
	for b := range results {
		if emitErr != nil {
			continue
		}
		if b.done {
			cur.Progress[b.chunk] = chunkDone
		} else {
			cur.Progress[b.chunk] = b.last
		}
		for cur.Progress[cur.DoneBelow] == chunkDone {
			delete(cur.Progress, cur.DoneBelow)
			cur.DoneBelow++
		}
		batch := source.Batch{Changes: b.changes}
		if cur.DoneBelow == cur.Chunks {
			batch.Done = true
			batch.Cursors = map[string]string{t.name: e.lsn.String()}
		} else {
			if len(b.changes) == 0 {
				continue
			}
			enc, err := json.Marshal(cur)
			if err != nil {
				emitErr = err
				cancel()
				continue
			}
			batch.Cursors = map[string]string{t.name: string(enc)}
		}
		if err := emit(ctx, batch); err != nil {
			emitErr = err
			cancel()
		}
	}
	<-waited
	if emitErr != nil {
		return emitErr
	}
	if werr != nil {
		return werr
	}
	s.log.Info("copy done", "table", t.name)
	return nil
}

// copyChunk streams the rows of one ctid range (after the ctid a previous
// copy emitted last) to results in batches of BatchRows, in tx (a
// transaction under the copy's snapshot).
func (s *Source) copyChunk(ctx context.Context, tx pgx.Tx, t *table, e *export, cur *copyCursor, chunk int, after string, results chan<- chunkBatch) error {
	var q strings.Builder
	q.WriteString("SELECT ctid")
	for _, c := range t.desc.Columns {
		q.WriteString(", ")
		q.WriteString(pgx.Identifier{c.Name}.Sanitize())
	}
	q.WriteString(" FROM " + t.qualified)
	var conds []string
	if cur.Chunks > 1 {
		conds = append(conds, fmt.Sprintf("ctid >= '(%d,0)'::tid", int64(chunk)*cur.ChunkPages))
		if chunk < cur.Chunks-1 {
			conds = append(conds, fmt.Sprintf("ctid < '(%d,0)'::tid", int64(chunk+1)*cur.ChunkPages))
		}
	}
	if after != "" {
		conds = append(conds, "ctid > '"+after+"'::tid")
	}
	if len(conds) > 0 {
		q.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	version := int64(e.lsn) << 16
	bin, formats, err := s.resultFormats(ctx, tx, t, q.String())
	if err != nil {
		return err
	}
	rr := tx.Conn().PgConn().ExecParams(ctx, q.String(), nil, nil, nil, formats)
	batch := make([]source.Change, 0, s.cfg.BatchRows)
	// The rows of a batch share one block of values: one allocation per
	// batch instead of one per row.
	ncols := len(t.cols)
	block := make([]any, s.cfg.BatchRows*ncols)
	var texts textArena
	// last is the binary ctid of the last row read: block number (uint32)
	// and line pointer (uint16), big-endian. The server's text output of a
	// ctid costs a fifth of a plain COPY's time; only the last row of a
	// batch needs it as text, and we format that one.
	var last [6]byte
	keyParts := make([]string, len(t.key))
	send := func(done bool) error {
		texts.fill()
		select {
		case results <- chunkBatch{chunk: chunk, changes: batch, last: fmt.Sprintf("(%d,%d)", binary.BigEndian.Uint32(last[:4]), binary.BigEndian.Uint16(last[4:])), done: done}:
			batch = make([]source.Change, 0, s.cfg.BatchRows)
			block = make([]any, s.cfg.BatchRows*ncols)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals[0]) != len(last) {
			_, _ = rr.Close()
			return fmt.Errorf("postgres source %s: table %s: copy chunk %d: a ctid of %d bytes, want %d", s.where, t.name, chunk, len(vals[0]), len(last))
		}
		copy(last[:], vals[0])
		n := len(batch) * ncols
		row := block[n : n+ncols : n+ncols]
		if err := decodeRow(t, bin, vals[1:], row, &texts); err != nil {
			_, _ = rr.Close()
			return err
		}
		for i, k := range t.key {
			keyParts[i] = string(vals[k+1])
		}
		batch = append(batch, source.Change{Table: t.name, ID: keyID(keyParts), Version: version, Columns: t.cols, Values: row})
		if len(batch) >= s.cfg.BatchRows {
			if err := send(false); err != nil {
				_, _ = rr.Close()
				return err
			}
		}
	}
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("postgres source %s: table %s: copy chunk %d: %w", s.where, t.name, chunk, err)
	}
	return send(true)
}

// resultFormats describes the copy query q of t and returns, per column of
// t, the type of the columns fetched in binary format (0: text), and the
// result formats to ask for (ctid first, in binary). Key columns stay in
// text: the record Id is their text.
func (s *Source) resultFormats(ctx context.Context, tx pgx.Tx, t *table, q string) ([]uint32, []int16, error) {
	sd, err := tx.Conn().PgConn().Prepare(ctx, "", q, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres source %s: table %s: describe the copy query: %w", s.where, t.name, err)
	}
	if len(sd.Fields) != len(t.desc.Columns)+1 {
		return nil, nil, fmt.Errorf("postgres source %s: table %s: the copy query returns %d columns, want %d; the table changed, restart the sync", s.where, t.name, len(sd.Fields), len(t.desc.Columns)+1)
	}
	bin := make([]uint32, len(t.desc.Columns))
	formats := make([]int16, len(sd.Fields))
	formats[0] = pgx.BinaryFormatCode
	key := map[int]bool{}
	for _, k := range t.key {
		key[k] = true
	}
	for i, f := range sd.Fields[1:] {
		if !key[i] && binaryOID(f.DataTypeOID, t.dec[i].kind) {
			bin[i], formats[i+1] = f.DataTypeOID, pgx.BinaryFormatCode
		}
	}
	return bin, formats, nil
}

// decodeRow converts the values of a row of t into row, in the order of
// t.cols: text, or binary where bin names a type. row holds nil for NULLs
// on entry. Text and JSON values are left to texts: they are in row once
// texts.fill has run.
func decodeRow(t *table, bin []uint32, vals [][]byte, row []any, texts *textArena) error {
	for i, v := range vals {
		if v == nil {
			continue
		}
		var x any
		var err error
		if k := t.dec[i].kind; bin[i] == 0 && (k == kindString || k == kindJSON) {
			texts.add(&row[i], v)
			continue
		}
		if bin[i] != 0 {
			x, err = decodeBinary(bin[i], v)
		} else {
			x, err = t.dec[i].decode(v)
		}
		if err != nil {
			return fmt.Errorf("table %s: column %s (%s): %w", t.name, t.desc.Columns[i].Name, t.desc.Columns[i].SourceType, err)
		}
		row[i] = x
	}
	return nil
}

// textArena gathers the text values of a batch of copied rows and turns
// them into strings with one allocation for the batch rather than one per
// value (half the allocations of a copy): each value is a substring of one
// string. Substrings keep that string alive, which is the batch's lifetime.
type textArena struct {
	buf   []byte
	slots []textSlot
}

// textSlot is where one value goes: buf[from:to] into *dst.
type textSlot struct {
	dst      *any
	from, to int
}

func (a *textArena) add(dst *any, v []byte) {
	from := len(a.buf)
	a.buf = append(a.buf, v...)
	a.slots = append(a.slots, textSlot{dst: dst, from: from, to: len(a.buf)})
}

// fill stores the values added since the last fill.
func (a *textArena) fill() {
	all := string(a.buf)
	for _, s := range a.slots {
		*s.dst = all[s.from:s.to]
	}
	a.buf, a.slots = a.buf[:0], a.slots[:0]
}

// lsnCursor parses a stream cursor.
func lsnCursor(table, c string) (pglogrepl.LSN, error) {
	lsn, err := pglogrepl.ParseLSN(c)
	if err != nil {
		return 0, &source.CursorExpiredError{Table: table, Reason: "cursor " + strconv.Quote(c) + " is not a replication position (an unfinished copy's cursor?)"}
	}
	return lsn, nil
}
