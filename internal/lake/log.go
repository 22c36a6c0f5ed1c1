package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Where lakelink keeps its own state in the lake (docs/commit-protocol.md).
const (
	stateDir       = "_lakelink/"
	logDir         = stateDir + "log/"
	checkpointDir  = stateDir + "checkpoints/"
	changesDir     = stateDir + "changes/"
	seqDigits      = 20
	readStateTries = 5
)

// A checkpoint holds every table, a commit record only the tables it
// touched, so checkpointing every k commits would make a one-row commit
// cost grow with the number of tables (#16). Instead a checkpoint is due
// once the records written since the last one are at least as large as it
// (so checkpoints never cost more bytes than the log itself, and ReadState
// replays at most one checkpoint's worth of records), but never before
// checkpointEvery commits and always by checkpointMost (which bounds the
// records ReadState reads one by one). Checkpoints and log records older
// than keepCommits before the newest checkpoint are deleted. Variables so
// that tests exercise them with small numbers.
var (
	checkpointEvery int64 = 100
	checkpointMost  int64 = 2000
	keepCommits     int64 = 200
)

// checkpointDue reports whether a checkpoint is due after commits records
// of logBytes since the last checkpoint, which was lastBytes large (0 when
// there is none).
func checkpointDue(commits, logBytes, lastBytes int64) bool {
	return commits >= checkpointEvery && (logBytes >= lastBytes || commits >= checkpointMost)
}

// ConflictError reports that another writer committed the sequence number
// this writer tried to commit: two lakelink syncs write the same lake.
type ConflictError struct {
	Seq int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("commit %d: another lakelink sync is writing this lake (commit record %s exists); stop the other sync, then restart this one", e.Seq, logName(e.Seq))
}

// errUncertain marks a failed commit-record write whose outcome is unknown
// (the store may have published it before failing). The writer must then
// neither delete the commit's objects nor trust its in-memory state: it
// re-reads the state before its next commit.
var errUncertain = errors.New("the commit record may have been written")

// record is one commit record: the full new state of every table the commit
// touched (nil for a dropped table), the stream's position and the full
// garbage list. On the wire a table's Source and Columns are null when the
// commit did not change them (they are the largest part of a TableState,
// and most commits only add a file or move a cursor); apply then keeps the
// previous ones. A table always has columns (its system columns), so null
// cannot mean empty.
//
// Cursors holds the tables whose commit only moved their own cursor while
// they were caught up (an idle Dataverse table's new delta token): table
// -> new cursor, which apply sets with LastSynchronized = Committed and
// FollowsStream off. Such a table's full state would be most of the record
// (its files and snapshots), so with thousands of idle tables their cursor
// commits would cost bytes in proportion to the table count (#16). A
// table is in Tables or Cursors, never both. A reader that ignores Cursors
// keeps an older cursor of the same table, which names the same data.
type record struct {
	Seq       int64                  `json:"seq"`
	Committed time.Time              `json:"committed"`
	Link      string                 `json:"link"`
	Tables    map[string]*TableState `json:"tables"`
	Cursors   map[string]string      `json:"cursors,omitempty"`
	// StreamCursor and StreamSynced are the State's after this commit.
	StreamCursor string    `json:"stream_cursor,omitempty"`
	StreamSynced time.Time `json:"stream_synced,omitzero"`
	Garbage      []Garbage `json:"garbage"`
}

func seqName(dir string, seq int64) string {
	return fmt.Sprintf("%s%0*d.json", dir, seqDigits, seq)
}

func logName(seq int64) string        { return seqName(logDir, seq) }
func checkpointName(seq int64) string { return seqName(checkpointDir, seq) }

// parseSeq returns the sequence number of a log or checkpoint object name.
func parseSeq(dir, name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, dir)
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".json")
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

func emptyState() *State { return &State{Tables: map[string]*TableState{}} }

// apply returns the state after rec; s is not modified.
func (s *State) apply(rec *record) *State {
	next := &State{Seq: rec.Seq, Committed: rec.Committed, Link: rec.Link, Tables: make(map[string]*TableState, len(s.Tables)), Garbage: rec.Garbage,
		StreamCursor: rec.StreamCursor, StreamSynced: rec.StreamSynced}
	for k, v := range s.Tables {
		next.Tables[k] = v
	}
	for k, v := range rec.Tables {
		switch {
		case v == nil:
			delete(next.Tables, k)
		case (v.Source == nil || v.Columns == nil) && s.Tables[k] != nil:
			c := *v
			if c.Source == nil {
				c.Source = s.Tables[k].Source
			}
			if c.Columns == nil {
				c.Columns = s.Tables[k].Columns
			}
			next.Tables[k] = &c
		default:
			next.Tables[k] = v
		}
	}
	for k, cur := range rec.Cursors {
		if b := next.Tables[k]; b != nil {
			c := *b
			c.Cursor, c.FollowsStream, c.LastSynchronized = cur, false, rec.Committed
			next.Tables[k] = &c
		}
	}
	return next
}

// cursorOnly reports whether ts, a table's state after a commit at
// committed, differs from base only as a record's Cursors entry says: a
// new Cursor, FollowsStream off, LastSynchronized = committed. Every other
// field must be the very same value (slices and pointers shared, not
// copied), compared field by field so that a field added to TableState
// later is covered too.
func cursorOnly(base, ts *TableState, committed time.Time) bool {
	if base == nil || ts == nil || ts.Cursor == "" || ts.FollowsStream || !ts.LastSynchronized.Equal(committed) {
		return false
	}
	want := *base
	want.Cursor, want.FollowsStream, want.LastSynchronized = ts.Cursor, false, ts.LastSynchronized
	a, b := reflect.ValueOf(want), reflect.ValueOf(*ts)
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		switch fa.Kind() {
		case reflect.Slice, reflect.Pointer, reflect.Map:
			if fa.Pointer() != fb.Pointer() || (fa.Kind() == reflect.Slice && fa.Len() != fb.Len()) {
				return false
			}
		default:
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				return false
			}
		}
	}
	return true
}

// ReadState returns the latest committed state of the lake in st: the
// newest checkpoint plus the commit records after it. A new lake has an
// empty State with Seq 0. It is safe to call while a writer commits: when a
// writer's clean-up removes an object between listing and reading, it
// starts over.
func ReadState(ctx context.Context, st store.Store) (*State, error) {
	var err error
	for range readStateTries {
		var s *State
		s, err = readState(ctx, st)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, store.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("reading the lake state: objects kept vanishing while listing them (%w); retry", err)
}

func readState(ctx context.Context, st store.Store) (*State, error) {
	cps, err := st.List(ctx, checkpointDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", checkpointDir, err)
	}
	s := emptyState()
	for i := len(cps) - 1; i >= 0; i-- {
		if _, ok := parseSeq(checkpointDir, cps[i].Name); !ok {
			continue
		}
		data, err := store.ReadAll(ctx, st, cps[i].Name)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %s: %w", cps[i].Name, err)
		}
		s = emptyState()
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("checkpoint %s is corrupt (%v); delete it to fall back to the commit log", cps[i].Name, err)
		}
		if s.Tables == nil {
			s.Tables = map[string]*TableState{}
		}
		break
	}
	logs, err := st.List(ctx, logDir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", logDir, err)
	}
	for _, o := range logs {
		seq, ok := parseSeq(logDir, o.Name)
		if !ok || seq <= s.Seq {
			continue
		}
		if seq != s.Seq+1 {
			return nil, fmt.Errorf("commit log: record %d follows state %d, records in between are missing; the lake state is damaged (%w)", seq, s.Seq, store.ErrNotExist)
		}
		rec, err := readRecord(ctx, st, o.Name)
		if err != nil {
			return nil, err
		}
		s = s.apply(rec)
	}
	return s, nil
}

func readRecord(ctx context.Context, st store.Store, name string) (*record, error) {
	data, err := store.ReadAll(ctx, st, name)
	if err != nil {
		return nil, fmt.Errorf("reading commit record %s: %w", name, err)
	}
	rec := &record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("commit record %s is corrupt (%v): it was written atomically, so the store lost data; restore the lake from a backup", name, err)
	}
	return rec, nil
}

// writeRecord publishes a commit record, exclusively, and returns its size.
// base is the state the record applies to.
func writeRecord(ctx context.Context, st store.Store, base *State, rec *record) (int64, error) {
	wire := *rec
	wire.Tables = make(map[string]*TableState, len(rec.Tables))
	for k, v := range rec.Tables {
		if b := base.Tables[k]; v != nil && b != nil && (v.Source == b.Source || sameSlice(v.Columns, b.Columns)) {
			c := *v
			if c.Source == b.Source {
				c.Source = nil
			}
			if sameSlice(c.Columns, b.Columns) {
				c.Columns = nil
			}
			v = &c
		}
		wire.Tables[k] = v
	}
	data, err := json.Marshal(&wire)
	if err != nil {
		return 0, fmt.Errorf("encoding commit %d: %w", rec.Seq, err)
	}
	if err := st.PutIfAbsent(ctx, logName(rec.Seq), data); err != nil {
		if errors.Is(err, store.ErrExist) {
			return 0, &ConflictError{Seq: rec.Seq}
		}
		return 0, fmt.Errorf("writing commit record %s: %w (%w)", logName(rec.Seq), err, errUncertain)
	}
	return int64(len(data)), nil
}

// writeCheckpoint publishes the full state s, prunes records and
// checkpoints more than keepCommits older than it, and returns its size. A
// reader racing the pruning restarts (ReadState), and it needs to be
// keepCommits commits behind for that to happen at all.
func writeCheckpoint(ctx context.Context, st store.Store, s *State) (int64, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("encoding checkpoint %d: %w", s.Seq, err)
	}
	if err := st.PutIfAbsent(ctx, checkpointName(s.Seq), data); err != nil && !errors.Is(err, store.ErrExist) {
		return 0, fmt.Errorf("writing checkpoint %s: %w", checkpointName(s.Seq), err)
	}
	size := int64(len(data))
	limit := s.Seq - keepCommits
	for _, dir := range []string{logDir, checkpointDir} {
		objs, err := st.List(ctx, dir)
		if err != nil {
			return size, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, o := range objs {
			if seq, ok := parseSeq(dir, o.Name); ok && seq < limit {
				if err := st.Delete(ctx, o.Name); err != nil {
					return size, fmt.Errorf("pruning %s: %w", o.Name, err)
				}
			}
		}
	}
	return size, nil
}
