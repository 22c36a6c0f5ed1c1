package delta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lakelink/lakelink/internal/lake/parquet"
	"github.com/lakelink/lakelink/internal/store"
)

// The checkpoint's Parquet schema (PROTOCOL.md, "Checkpoint Schema"): one
// nullable struct column per action, one action per row. Remove tombstones
// carry no stats or tags there.
var (
	strMap     = arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)
	checkpoint = arrow.NewSchema([]arrow.Field{
		{Name: "txn", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "appId", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			arrow.Field{Name: "lastUpdated", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		)},
		{Name: "add", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "partitionValues", Type: strMap, Nullable: true},
			arrow.Field{Name: "size", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			arrow.Field{Name: "modificationTime", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			arrow.Field{Name: "dataChange", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
			arrow.Field{Name: "stats", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "tags", Type: strMap, Nullable: true},
		)},
		{Name: "remove", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "deletionTimestamp", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			arrow.Field{Name: "dataChange", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
			arrow.Field{Name: "extendedFileMetadata", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
			arrow.Field{Name: "partitionValues", Type: strMap, Nullable: true},
			arrow.Field{Name: "size", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		)},
		{Name: "metaData", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "format", Nullable: true, Type: arrow.StructOf(
				arrow.Field{Name: "provider", Type: arrow.BinaryTypes.String, Nullable: true},
				arrow.Field{Name: "options", Type: strMap, Nullable: true},
			)},
			arrow.Field{Name: "schemaString", Type: arrow.BinaryTypes.String, Nullable: true},
			arrow.Field{Name: "partitionColumns", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
			arrow.Field{Name: "createdTime", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			arrow.Field{Name: "configuration", Type: strMap, Nullable: true},
		)},
		{Name: "protocol", Nullable: true, Type: arrow.StructOf(
			arrow.Field{Name: "minReaderVersion", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
			arrow.Field{Name: "minWriterVersion", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		)},
	}, nil)
)

// kv is one map entry as Arrow's JSON form of a map spells it.
type kv struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

func toKV(m map[string]string) []kv {
	if m == nil {
		return nil
	}
	out := []kv{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		out = append(out, kv{Key: k, Value: &v})
	}
	return out
}

func fromKV(l []kv) map[string]string {
	if l == nil {
		return nil
	}
	m := make(map[string]string, len(l))
	for _, e := range l {
		if e.Value != nil {
			m[e.Key] = *e.Value
		} else {
			m[e.Key] = ""
		}
	}
	return m
}

// The checkpoint row in Arrow's JSON form: maps as lists of entries.
type (
	ckAdd struct {
		Path             string `json:"path"`
		PartitionValues  []kv   `json:"partitionValues"`
		Size             int64  `json:"size"`
		ModificationTime int64  `json:"modificationTime"`
		DataChange       bool   `json:"dataChange"`
		Stats            string `json:"stats,omitempty"`
		Tags             []kv   `json:"tags"`
	}
	ckRemove struct {
		Path                 string `json:"path"`
		DeletionTimestamp    *int64 `json:"deletionTimestamp"`
		DataChange           bool   `json:"dataChange"`
		ExtendedFileMetadata bool   `json:"extendedFileMetadata"`
		PartitionValues      []kv   `json:"partitionValues"`
		Size                 *int64 `json:"size"`
	}
	ckFormat struct {
		Provider string `json:"provider"`
		Options  []kv   `json:"options"`
	}
	ckMeta struct {
		ID               string   `json:"id"`
		Name             string   `json:"name,omitempty"`
		Description      string   `json:"description,omitempty"`
		Format           ckFormat `json:"format"`
		SchemaString     string   `json:"schemaString"`
		PartitionColumns []string `json:"partitionColumns"`
		CreatedTime      *int64   `json:"createdTime"`
		Configuration    []kv     `json:"configuration"`
	}
	ckRow struct {
		Txn      *Txn      `json:"txn"`
		Add      *ckAdd    `json:"add"`
		Remove   *ckRemove `json:"remove"`
		MetaData *ckMeta   `json:"metaData"`
		Protocol *Protocol `json:"protocol"`
	}
)

// encodeCheckpoint returns the Parquet checkpoint of s and its count of
// actions: protocol, metaData, the txns, the live files (sorted by path),
// then the tombstones.
func encodeCheckpoint(s *Snapshot) ([]byte, int64, error) {
	if s.Protocol == nil || s.Metadata == nil {
		return nil, 0, fmt.Errorf("the snapshot has no protocol or metaData")
	}
	var rows []ckRow
	rows = append(rows, ckRow{Protocol: s.Protocol})
	m := s.Metadata
	rows = append(rows, ckRow{MetaData: &ckMeta{ID: m.ID, Name: m.Name, Description: m.Description,
		Format:       ckFormat{Provider: m.Format.Provider, Options: toKV(orEmpty(m.Format.Options))},
		SchemaString: m.SchemaString, PartitionColumns: orEmptyList(m.PartitionColumns), CreatedTime: m.CreatedTime,
		Configuration: toKV(orEmpty(m.Configuration))}})
	for _, id := range slices.Sorted(maps.Keys(s.Txns)) {
		t := s.Txns[id]
		rows = append(rows, ckRow{Txn: &t})
	}
	for _, p := range s.Paths() {
		a := s.Files[p]
		rows = append(rows, ckRow{Add: &ckAdd{Path: a.Path, PartitionValues: toKV(orEmpty(a.PartitionValues)), Size: a.Size,
			ModificationTime: a.ModificationTime, DataChange: false, Stats: a.Stats, Tags: toKV(a.Tags)}})
	}
	for _, p := range slices.Sorted(maps.Keys(s.Tombstones)) {
		r := s.Tombstones[p]
		rows = append(rows, ckRow{Remove: &ckRemove{Path: r.Path, DeletionTimestamp: r.DeletionTimestamp, DataChange: false,
			ExtendedFileMetadata: r.ExtendedFileMetadata, PartitionValues: toKV(r.PartitionValues), Size: r.Size}})
	}
	var js bytes.Buffer
	js.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			js.WriteByte(',')
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, 0, err
		}
		js.Write(b)
	}
	js.WriteByte(']')
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, checkpoint, &js)
	if err != nil {
		return nil, 0, fmt.Errorf("building the checkpoint: %w", err)
	}
	defer rec.Release()
	data, err := parquet.Encode(checkpoint, rec)
	if err != nil {
		return nil, 0, err
	}
	return data, int64(len(rows)), nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptyList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// readCheckpoint reads the classic checkpoint of version v into a snapshot.
// It reads any V1 checkpoint with the columns lakelink writes (other
// columns are ignored), by name.
func (l *Log) readCheckpoint(ctx context.Context, v int64) (*Snapshot, error) {
	name := l.CheckpointName(v)
	data, err := store.ReadAll(ctx, l.st, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	s, err := decodeCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if s.Protocol == nil || s.Metadata == nil {
		return nil, fmt.Errorf("reading %s: the checkpoint has no protocol or metaData", name)
	}
	s.Version = v
	return s, nil
}

func decodeCheckpoint(data []byte) (*Snapshot, error) {
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	s := NewSnapshot()
	tr := array.NewTableReader(tbl, 1024)
	defer tr.Release()
	for tr.Next() {
		var buf bytes.Buffer
		if err := array.RecordToJSON(tr.RecordBatch(), &buf); err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(&buf)
		sc.Buffer(make([]byte, 0, 64<<10), 256<<20)
		for sc.Scan() {
			var r ckRow
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return nil, err
			}
			switch {
			case r.Protocol != nil:
				s.Protocol = r.Protocol
			case r.MetaData != nil:
				m := r.MetaData
				s.Metadata = &Metadata{ID: m.ID, Name: m.Name, Description: m.Description,
					Format:       Format{Provider: m.Format.Provider, Options: orEmpty(fromKV(m.Format.Options))},
					SchemaString: m.SchemaString, PartitionColumns: orEmptyList(m.PartitionColumns), CreatedTime: m.CreatedTime,
					Configuration: orEmpty(fromKV(m.Configuration))}
			case r.Txn != nil:
				s.Txns[r.Txn.AppID] = *r.Txn
			case r.Add != nil:
				a := r.Add
				s.Files[a.Path] = &Add{Path: a.Path, PartitionValues: orEmpty(fromKV(a.PartitionValues)), Size: a.Size,
					ModificationTime: a.ModificationTime, DataChange: a.DataChange, Stats: a.Stats, Tags: fromKV(a.Tags)}
			case r.Remove != nil:
				rm := r.Remove
				s.Tombstones[rm.Path] = &Remove{Path: rm.Path, DeletionTimestamp: rm.DeletionTimestamp, DataChange: rm.DataChange,
					ExtendedFileMetadata: rm.ExtendedFileMetadata, PartitionValues: fromKV(rm.PartitionValues), Size: rm.Size}
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return s, tr.Err()
}
