package delta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/lakelink/lakelink/internal/store"
)

// CheckpointInterval is how many versions lie between two checkpoints:
// lakelink checkpoints every version divisible by it (Delta's default
// delta.checkpointInterval).
const CheckpointInterval = 10

// LogDir is the log folder of a table, relative to the table's folder.
const LogDir = "_delta_log/"

// lastCheckpointName is the last checkpoint file, in LogDir.
const lastCheckpointName = "_last_checkpoint"

// ErrConflict is wrapped by the error of a commit whose version another
// writer committed first.
var ErrConflict = errors.New("another writer committed this version of the Delta table")

// Log is the transaction log of one Delta table in a store: the table's
// folder dir ("account"; "" for the store's root) holds LogDir.
type Log struct {
	st  store.Store
	dir string
}

// NewLog returns the log of the table in folder dir of st.
func NewLog(st store.Store, dir string) *Log {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return &Log{st: st, dir: dir}
}

// Dir returns the table's folder ("" or ending in "/").
func (l *Log) Dir() string { return l.dir }

// CommitName returns the object name of version v's commit.
func (l *Log) CommitName(v int64) string {
	return fmt.Sprintf("%s%s%020d.json", l.dir, LogDir, v)
}

// CheckpointName returns the object name of version v's classic checkpoint.
func (l *Log) CheckpointName(v int64) string {
	return fmt.Sprintf("%s%s%020d.checkpoint.parquet", l.dir, LogDir, v)
}

// Commit writes version v of the table from actions, put-if-absent: of two
// writers of one version exactly one succeeds, the other gets an error
// wrapping ErrConflict (PROTOCOL.md, "Creation of New Log Entries").
func (l *Log) Commit(ctx context.Context, v int64, actions []Action) error {
	data, err := encodeCommit(actions)
	if err != nil {
		return fmt.Errorf("table %s, version %d: %w", l.dir, v, err)
	}
	name := l.CommitName(v)
	if err := l.st.PutIfAbsent(ctx, name, data); err != nil {
		if errors.Is(err, store.ErrExist) {
			return fmt.Errorf("writing %s: %w", name, ErrConflict)
		}
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// Snapshot is the state of a Delta table at one version after action
// reconciliation (PROTOCOL.md, "Action Reconciliation").
type Snapshot struct {
	// Version is the version; -1 for a table with no commit.
	Version  int64
	Protocol *Protocol
	Metadata *Metadata
	// Files are the live files by path, Tombstones the removed ones not
	// added again, Txns the latest txn per appId.
	Files      map[string]*Add
	Tombstones map[string]*Remove
	Txns       map[string]Txn
}

// NewSnapshot returns the snapshot of a table with no commit.
func NewSnapshot() *Snapshot {
	return &Snapshot{Version: -1, Files: map[string]*Add{}, Tombstones: map[string]*Remove{}, Txns: map[string]Txn{}}
}

// Clone returns a copy of s that Apply may change without changing s (the
// actions themselves are shared; nothing modifies them).
func (s *Snapshot) Clone() *Snapshot {
	c := *s
	c.Files, c.Tombstones, c.Txns = maps.Clone(s.Files), maps.Clone(s.Tombstones), maps.Clone(s.Txns)
	return &c
}

// Apply applies the actions of version v, which must follow s.Version.
func (s *Snapshot) Apply(v int64, actions []Action) error {
	if v != s.Version+1 {
		return fmt.Errorf("delta: version %d does not follow version %d", v, s.Version)
	}
	for i := range actions {
		a := &actions[i]
		switch {
		case a.Protocol != nil:
			s.Protocol = a.Protocol
		case a.MetaData != nil:
			s.Metadata = a.MetaData
		case a.Txn != nil:
			s.Txns[a.Txn.AppID] = *a.Txn
		case a.Add != nil:
			s.Files[a.Add.Path] = a.Add
			delete(s.Tombstones, a.Add.Path)
		case a.Remove != nil:
			delete(s.Files, a.Remove.Path)
			s.Tombstones[a.Remove.Path] = a.Remove
		}
	}
	if s.Protocol == nil || s.Metadata == nil {
		return fmt.Errorf("delta: version %d: the table has no protocol or no metaData action", v)
	}
	if s.Protocol.MinReaderVersion > MinReaderVersion {
		return fmt.Errorf("delta: version %d needs reader version %d; lakelink reads version %d", v, s.Protocol.MinReaderVersion, MinReaderVersion)
	}
	s.Version = v
	return nil
}

// Paths returns the paths of the live files, sorted.
func (s *Snapshot) Paths() []string { return slices.Sorted(maps.Keys(s.Files)) }

// decodeCommit parses the newline-delimited JSON of a commit.
func decodeCommit(data []byte) ([]Action, error) {
	var out []Action
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 256<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a Action
		if err := json.Unmarshal(line, &a); err != nil {
			return nil, err
		}
		if a.set() == 0 {
			// An action lakelink does not know (cdc, domainMetadata):
			// readers ignore them (PROTOCOL.md, "Protocol Evolution").
			continue
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// ReadCommit reads the actions of version v.
func (l *Log) ReadCommit(ctx context.Context, v int64) ([]Action, error) {
	name := l.CommitName(v)
	data, err := store.ReadAll(ctx, l.st, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	acts, err := decodeCommit(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return acts, nil
}

// lastCheckpoint is the _last_checkpoint file (PROTOCOL.md, "Last
// Checkpoint File Schema").
type lastCheckpoint struct {
	Version       int64 `json:"version"`
	Size          int64 `json:"size"`
	SizeInBytes   int64 `json:"sizeInBytes"`
	NumOfAddFiles int64 `json:"numOfAddFiles"`
}

// Read returns the latest snapshot of the table: the newest checkpoint
// (found by listing the log, so a stale _last_checkpoint does not matter)
// and every commit after it. A table without a commit is NewSnapshot().
func (l *Log) Read(ctx context.Context) (*Snapshot, error) {
	return l.ReadFrom(ctx, nil)
}

// ReadFrom returns the latest snapshot, reading only the commits after
// base (a snapshot of this table read earlier) when base is not nil.
func (l *Log) ReadFrom(ctx context.Context, base *Snapshot) (*Snapshot, error) {
	prefix := l.dir + LogDir
	objs, err := l.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	var commits []int64
	checkpoint := int64(-1)
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Name, prefix)
		if strings.Contains(rest, "/") {
			continue
		}
		if num, ok := strings.CutSuffix(rest, ".checkpoint.parquet"); ok {
			if v, err := strconv.ParseInt(num, 10, 64); err == nil && len(num) == 20 {
				checkpoint = max(checkpoint, v)
			}
			continue
		}
		if num, ok := strings.CutSuffix(rest, ".json"); ok && len(num) == 20 {
			if v, err := strconv.ParseInt(num, 10, 64); err == nil {
				commits = append(commits, v)
			}
		}
	}
	s := NewSnapshot()
	switch {
	case base != nil && base.Version >= checkpoint:
		s = base.Clone()
	case checkpoint >= 0:
		if s, err = l.readCheckpoint(ctx, checkpoint); err != nil {
			return nil, err
		}
	}
	slices.Sort(commits)
	for _, v := range commits {
		if v <= s.Version {
			continue
		}
		acts, err := l.ReadCommit(ctx, v)
		if err != nil {
			return nil, err
		}
		if err := s.Apply(v, acts); err != nil {
			return nil, fmt.Errorf("table %s: %w", l.dir, err)
		}
	}
	return s, nil
}

// Checkpoint writes the classic V1 checkpoint of s (PROTOCOL.md,
// "Checkpoints"): protocol, metaData, txns, live files and tombstones, as
// one Parquet file, then _last_checkpoint pointing at it. The checkpoint
// object is written whole (Create), so a reader never sees a part of one;
// two writers of one checkpoint write the same content.
func (l *Log) Checkpoint(ctx context.Context, s *Snapshot) error {
	data, actions, err := encodeCheckpoint(s)
	if err != nil {
		return fmt.Errorf("table %s: checkpoint of version %d: %w", l.dir, s.Version, err)
	}
	name := l.CheckpointName(s.Version)
	if err := store.Put(ctx, l.st, name, data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	lc, err := json.Marshal(lastCheckpoint{Version: s.Version, Size: actions, SizeInBytes: int64(len(data)), NumOfAddFiles: int64(len(s.Files))})
	if err != nil {
		return err
	}
	last := l.dir + LogDir + lastCheckpointName
	if err := store.Put(ctx, l.st, last, append(lc, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", last, err)
	}
	return nil
}
