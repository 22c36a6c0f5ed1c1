// Package pgfloor measures the floors `lakelink bench` and the PostgreSQL
// connector's Go benchmarks compare the connector with: a raw COPY ... TO
// STDOUT, and pg_recvlogical decoding the same WAL with pgoutput. It is
// tooling, not product: nothing on a link's path imports it. It imports
// pgx only, so that the connector's own test files can use it.
package pgfloor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// CopyTo writes table with a raw COPY ... TO STDOUT (text format) to w: the
// floor `lakelink bench` compares the initial copy with.
func CopyTo(ctx context.Context, dsn, table string, w io.Writer) (rows int64, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("bench copy of %s: connect: %w", table, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var qualified string
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1)::text`, table).Scan(&qualified); err != nil {
		return 0, fmt.Errorf("bench copy of %s: resolve table: %w", table, err)
	}
	tag, err := conn.PgConn().CopyTo(ctx, w, "COPY "+qualified+" TO STDOUT")
	if err != nil {
		return 0, fmt.Errorf("bench copy of %s: %w", table, err)
	}
	return tag.RowsAffected(), nil
}

// RecvLogicalResult is what pg_recvlogical decoded.
type RecvLogicalResult struct {
	Changes int64 // insert, update and delete messages
	Bytes   int64
	Elapsed time.Duration
}

// PerSecond is the decode rate in changes per second.
func (r RecvLogicalResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Changes) / r.Elapsed.Seconds()
}

// RecvLogical runs pg_recvlogical from binDir on slot (a pgoutput slot,
// which must exist and be idle) with publication, from start to end (LSNs),
// and counts the changes it decodes: the floor `lakelink bench` compares
// Stream's throughput with. dsn must be a libpq key=value string. Take end
// from pg_current_wal_insert_lsn(): under synchronous_commit=off
// pg_current_wal_lsn() may lag the last commit.
func RecvLogical(ctx context.Context, binDir, dsn, slot, publication, start, end string) (RecvLogicalResult, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_recvlogical"),
		"-d", dsn, "-S", slot, "--start", "-I", start, "-E", end, "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names="+publication, "-f", "-")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return RecvLogicalResult{}, fmt.Errorf("pg_recvlogical: %w", err)
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return RecvLogicalResult{}, fmt.Errorf("start pg_recvlogical from %s: %w", binDir, err)
	}
	res, cerr := countPgoutput(bufio.NewReaderSize(out, 1<<20))
	werr := cmd.Wait()
	res.Elapsed = time.Since(began)
	if werr != nil {
		return res, fmt.Errorf("pg_recvlogical: %w: %s", werr, stderr.String())
	}
	if cerr != nil {
		return res, fmt.Errorf("pg_recvlogical output: %w", cerr)
	}
	return res, nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// countPgoutput walks pg_recvlogical's output of pgoutput messages (each
// followed by a newline pg_recvlogical adds) and counts changes. pgoutput
// messages are binary, so they are walked by their structure, not split on
// newlines.
func countPgoutput(r *bufio.Reader) (RecvLogicalResult, error) {
	var res RecvLogicalResult
	w := &walker{r: r}
	for {
		typ, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			res.Bytes = w.n
			return res, nil
		}
		if err != nil {
			return res, err
		}
		w.n++
		switch typ {
		case 'B':
			w.skip(20)
		case 'C':
			w.skip(25)
		case 'O':
			w.skip(8)
			w.cstring()
		case 'R':
			w.skip(4)
			w.cstring()
			w.cstring()
			w.skip(1)
			for range w.u16() {
				w.skip(1)
				w.cstring()
				w.skip(8)
			}
		case 'Y':
			w.skip(4)
			w.cstring()
			w.cstring()
		case 'I':
			w.skip(5)
			w.tuple()
			res.Changes++
		case 'U':
			w.skip(4)
			if k := w.byte(); k == 'K' || k == 'O' {
				w.tuple()
				w.skip(1)
			}
			w.tuple()
			res.Changes++
		case 'D':
			w.skip(5)
			w.tuple()
			res.Changes++
		case 'T':
			n := w.u32()
			w.skip(1 + 4*int(n))
		case 'M':
			w.skip(9)
			w.cstring()
			w.skip(int(w.u32()))
		default:
			return res, fmt.Errorf("unknown pgoutput message %q at byte %d", typ, w.n-1)
		}
		if nl := w.byte(); w.err == nil && nl != '\n' {
			return res, fmt.Errorf("pgoutput message not followed by a newline at byte %d", w.n-1)
		}
		if w.err != nil {
			return res, fmt.Errorf("truncated pgoutput message at byte %d: %w", w.n, w.err)
		}
	}
}

// walker reads a pgoutput message field by field; the first error sticks.
type walker struct {
	r   *bufio.Reader
	n   int64
	err error
	buf [4]byte
}

func (w *walker) skip(n int) {
	if w.err != nil {
		return
	}
	d, err := w.r.Discard(n)
	w.n += int64(d)
	w.err = err
}

func (w *walker) byte() byte {
	if w.err != nil {
		return 0
	}
	b, err := w.r.ReadByte()
	w.err = err
	w.n++
	return b
}

func (w *walker) read(n int) []byte {
	if w.err != nil {
		return make([]byte, n)
	}
	_, w.err = io.ReadFull(w.r, w.buf[:n])
	w.n += int64(n)
	return w.buf[:n]
}

func (w *walker) u16() uint16 { return binary.BigEndian.Uint16(w.read(2)) }
func (w *walker) u32() uint32 { return binary.BigEndian.Uint32(w.read(4)) }

func (w *walker) cstring() {
	if w.err != nil {
		return
	}
	s, err := w.r.ReadSlice(0)
	for errors.Is(err, bufio.ErrBufferFull) {
		w.n += int64(len(s))
		s, err = w.r.ReadSlice(0)
	}
	w.n += int64(len(s))
	w.err = err
}

func (w *walker) tuple() {
	for range w.u16() {
		switch w.byte() {
		case 't', 'b':
			w.skip(int(w.u32()))
		}
		if w.err != nil {
			return
		}
	}
}
