package delta

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/lakelink/lakelink/internal/lake/parquet"
	"github.com/lakelink/lakelink/internal/store"
)

// AppID is the txn appId under which lakelink records the lake commit
// (lake.State.Seq) a version of the table reflects.
const AppID = "lakelink"

// AppendOnlyProperty is the table property of an append-only table
// (PROTOCOL.md, "Append-only Tables"; needs writer version 2).
const AppendOnlyProperty = "delta.appendOnly"

// DataFileName returns the name, relative to the table's folder, of a new
// data file of partition: PartitionId=<partition>/part-00000-<unique>.c000.snappy.parquet,
// the shape Spark gives its files. unique (lake.Objects.Unique) makes it a
// name used once (PROTOCOL.md, "Data Files": uniquely named, never
// overwritten). Partition values and unique tokens hold no character a URI
// path must escape, so the name is also the add action's path.
func DataFileName(partition, unique string) string {
	return fmt.Sprintf("%s=%s/part-00000-%s.c000.snappy.parquet", PartitionColumn, partition, unique)
}

// IsDataFileName reports whether rel (relative to a table's folder) is a
// name DataFileName makes.
func IsDataFileName(rel string) bool {
	dir, file, ok := strings.Cut(rel, "/")
	return ok && strings.HasPrefix(dir, PartitionColumn+"=") && !strings.Contains(file, "/") &&
		strings.HasPrefix(file, "part-00000-") && strings.HasSuffix(file, ".c000.snappy.parquet")
}

// WriteDataFile writes rec as the new data file rel (DataFileName) of the
// table in l, of partition, at now, and returns its add action (dataChange
// true, with its statistics over the columns indexed).
func (l *Log) WriteDataFile(ctx context.Context, rel, partition string, rec arrow.RecordBatch, indexed []string, now time.Time) (*Add, error) {
	data, err := parquet.Encode(rec.Schema(), rec)
	if err != nil {
		return nil, fmt.Errorf("table %s: encoding %s: %w", l.dir, rel, err)
	}
	st, err := Stats(rec, indexed)
	if err != nil {
		return nil, fmt.Errorf("table %s: %s: %w", l.dir, rel, err)
	}
	name := l.dir + rel
	if err := store.Put(ctx, l.st, name, data); err != nil {
		return nil, fmt.Errorf("writing %s: %w", name, err)
	}
	return &Add{Path: rel, PartitionValues: map[string]string{PartitionColumn: partition}, Size: int64(len(data)),
		ModificationTime: now.UnixMilli(), DataChange: true, Stats: st}, nil
}

// Target is what a table is to hold after Advance.
type Target struct {
	// Metadata is the table's metaData; its ID is kept from the
	// snapshot's when empty (a new table needs one).
	Metadata Metadata
	// Files are the live files.
	Files []*Add
	// Seq is the lake commit the version reflects (txn of AppID).
	Seq int64
	// Rearrange says the change only rearranges data (compaction): adds
	// and removes carry dataChange false.
	Rearrange bool
	// Operation names the change in commitInfo ("WRITE", "OPTIMIZE").
	Operation string
	// Now is the commit time; tombstones older than Retention are
	// dropped from the snapshot (and so from later checkpoints).
	Now       time.Time
	Retention time.Duration
}

// Advance commits the next version of the table in l, taking snapshot s
// (the table's latest) to t, and returns the new snapshot; s is unchanged.
// Nothing is committed when s holds t already (same files, same metadata,
// and t.Seq recorded). A version divisible by CheckpointInterval is
// checkpointed. An append-only table (AppendOnlyProperty) whose data t
// removes first gets a version that lifts the property, since no version of
// an append-only table may remove data (PROTOCOL.md, "Append-only Tables").
// A conflict (another writer took the version) is an error wrapping
// ErrConflict: read the log again before retrying.
func (l *Log) Advance(ctx context.Context, s *Snapshot, t Target) (*Snapshot, error) {
	meta := t.Metadata
	if meta.ID == "" && s.Metadata != nil {
		meta.ID = s.Metadata.ID
	}
	if meta.ID == "" {
		return nil, fmt.Errorf("table %s: a new Delta table needs a metadata id", l.dir)
	}
	meta.Format = Format{Provider: "parquet", Options: orEmpty(meta.Format.Options)}
	meta.Configuration = orEmpty(meta.Configuration)
	meta.PartitionColumns = orEmptyList(meta.PartitionColumns)
	want := make(map[string]*Add, len(t.Files))
	for _, a := range t.Files {
		want[a.Path] = a
	}
	var removes, adds []Action
	deleted := t.Now.UnixMilli()
	for _, p := range s.Paths() {
		if _, ok := want[p]; ok {
			continue
		}
		a := s.Files[p]
		size := a.Size
		removes = append(removes, Action{Remove: &Remove{Path: p, DeletionTimestamp: &deleted, DataChange: !t.Rearrange,
			ExtendedFileMetadata: true, PartitionValues: a.PartitionValues, Size: &size}})
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.Files[p]; ok {
			continue
		}
		a := *want[p]
		a.DataChange = !t.Rearrange
		adds = append(adds, Action{Add: &a})
	}
	metaChanged := s.Metadata == nil || !sameMetadata(s.Metadata, &meta)
	if !metaChanged && len(adds) == 0 && len(removes) == 0 && s.Txns[AppID].Version == t.Seq {
		return s, nil
	}
	next := s.Clone()
	if t.Retention > 0 {
		next.Expire(t.Now.Add(-t.Retention))
	}
	if len(removes) > 0 && !t.Rearrange && s.Metadata != nil && s.Metadata.Configuration[AppendOnlyProperty] == "true" {
		lifted := *s.Metadata
		lifted.Configuration = maps.Clone(lifted.Configuration)
		delete(lifted.Configuration, AppendOnlyProperty)
		acts := []Action{{CommitInfo: commitInfo(t.Now, "SET TBLPROPERTIES")}, {MetaData: &lifted}}
		if err := l.commit(ctx, next, acts); err != nil {
			return nil, err
		}
		metaChanged = true
	}
	acts := []Action{{CommitInfo: commitInfo(t.Now, t.Operation)}}
	if next.Version < 0 {
		acts = append(acts, Action{Protocol: &Protocol{MinReaderVersion: MinReaderVersion, MinWriterVersion: MinWriterVersion}})
	}
	if metaChanged {
		if meta.CreatedTime == nil {
			ms := t.Now.UnixMilli()
			meta.CreatedTime = &ms
		}
		acts = append(acts, Action{MetaData: &meta})
	}
	updated := t.Now.UnixMilli()
	acts = append(acts, Action{Txn: &Txn{AppID: AppID, Version: t.Seq, LastUpdated: &updated}})
	acts = append(append(acts, removes...), adds...)
	if err := l.commit(ctx, next, acts); err != nil {
		return nil, err
	}
	return next, nil
}

// commit writes the next version of s from acts and applies them to s,
// expiring old tombstones and checkpointing when the version is due.
func (l *Log) commit(ctx context.Context, s *Snapshot, acts []Action) error {
	v := s.Version + 1
	if err := l.Commit(ctx, v, acts); err != nil {
		return err
	}
	if err := s.Apply(v, acts); err != nil {
		return fmt.Errorf("table %s: %w", l.dir, err)
	}
	if v > 0 && v%CheckpointInterval == 0 {
		if err := l.Checkpoint(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Expire drops the tombstones removed before cutoff: files a reader of the
// table no longer needs (PROTOCOL.md: a remove stays as a tombstone until it
// has expired).
func (s *Snapshot) Expire(cutoff time.Time) {
	for p, r := range s.Tombstones {
		if r.DeletionTimestamp == nil || *r.DeletionTimestamp < cutoff.UnixMilli() {
			delete(s.Tombstones, p)
		}
	}
}

func commitInfo(now time.Time, op string) *CommitInfo {
	return &CommitInfo{Timestamp: now.UnixMilli(), Operation: op, EngineInfo: "lakelink"}
}

func sameMetadata(a, b *Metadata) bool {
	return a.ID == b.ID && a.SchemaString == b.SchemaString && slices.Equal(a.PartitionColumns, b.PartitionColumns) &&
		maps.Equal(a.Configuration, b.Configuration) && a.Name == b.Name && a.Description == b.Description
}
