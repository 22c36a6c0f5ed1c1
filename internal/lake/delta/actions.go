// Package delta writes and reads Delta Lake tables from the Delta
// transaction log protocol (github.com/delta-io/delta, PROTOCOL.md), with no
// Delta library: the log's actions (protocol, metaData, add, remove, txn,
// commitInfo), commits as _delta_log/<version, 20 digits>.json written
// put-if-absent, classic V1 Parquet checkpoints every CheckpointInterval
// versions with _delta_log/_last_checkpoint, and the table's Parquet data
// files (package lake/parquet) with their per-file statistics.
//
// Protocol versions: reader 1, writer 2, the lowest that hold what lakelink
// writes: no column mapping, deletion vectors, timestampNtz or other table
// feature (reader 1); writer 2 for the delta.appendOnly property that
// append-only tables carry (PROTOCOL.md, "Append-only Tables" and "Writer
// Version Requirements"). docs/formats.md lists the choices.
package delta

import (
	"encoding/json"
	"fmt"
)

// Protocol versions lakelink writes and reads (see the package doc).
const (
	MinReaderVersion = 1
	MinWriterVersion = 2
)

// Protocol is the protocol action.
type Protocol struct {
	MinReaderVersion int32 `json:"minReaderVersion"`
	MinWriterVersion int32 `json:"minWriterVersion"`
}

// Format is the metaData action's format.
type Format struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

// Metadata is the metaData action.
type Metadata struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Format           Format            `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
	Configuration    map[string]string `json:"configuration"`
}

// Add is the add action.
type Add struct {
	Path             string            `json:"path"`
	PartitionValues  map[string]string `json:"partitionValues"`
	Size             int64             `json:"size"`
	ModificationTime int64             `json:"modificationTime"`
	DataChange       bool              `json:"dataChange"`
	// Stats is the JSON text of the file's statistics (Stats).
	Stats string            `json:"stats,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// Remove is the remove action; lakelink always writes the extended file
// metadata (partitionValues and size).
type Remove struct {
	Path                 string            `json:"path"`
	DeletionTimestamp    *int64            `json:"deletionTimestamp,omitempty"`
	DataChange           bool              `json:"dataChange"`
	ExtendedFileMetadata bool              `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]string `json:"partitionValues,omitempty"`
	Size                 *int64            `json:"size,omitempty"`
}

// Txn is the txn (transaction identifier) action: lakelink records, per
// table, the lake commit (its sequence number) the version reflects, so a
// writer that restarts knows what the Delta log holds already.
type Txn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

// CommitInfo is the commitInfo action (free-form provenance).
type CommitInfo struct {
	Timestamp           int64             `json:"timestamp"`
	Operation           string            `json:"operation"`
	OperationParameters map[string]string `json:"operationParameters,omitempty"`
	EngineInfo          string            `json:"engineInfo,omitempty"`
}

// Action is one line of a commit: exactly one field is set.
type Action struct {
	CommitInfo *CommitInfo `json:"commitInfo,omitempty"`
	Protocol   *Protocol   `json:"protocol,omitempty"`
	MetaData   *Metadata   `json:"metaData,omitempty"`
	Txn        *Txn        `json:"txn,omitempty"`
	Add        *Add        `json:"add,omitempty"`
	Remove     *Remove     `json:"remove,omitempty"`
}

// set counts the fields of a that are set.
func (a *Action) set() int {
	n := 0
	for _, p := range []bool{a.CommitInfo != nil, a.Protocol != nil, a.MetaData != nil, a.Txn != nil, a.Add != nil, a.Remove != nil} {
		if p {
			n++
		}
	}
	return n
}

// encodeCommit returns the newline-delimited JSON of a commit, one action a
// line, after checking the rules of PROTOCOL.md "Delta Log Entries": at most
// one metaData, one protocol, one txn per appId, one add and one remove per
// path, and no path both added and removed (there are no deletion vectors).
func encodeCommit(actions []Action) ([]byte, error) {
	var out []byte
	var meta, proto int
	txns, adds, removes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := range actions {
		a := &actions[i]
		if a.set() != 1 {
			return nil, fmt.Errorf("delta: action %d sets %d kinds of action, want one", i, a.set())
		}
		switch {
		case a.MetaData != nil:
			meta++
		case a.Protocol != nil:
			proto++
		case a.Txn != nil:
			if txns[a.Txn.AppID] {
				return nil, fmt.Errorf("delta: two txn actions of app %q in one commit", a.Txn.AppID)
			}
			txns[a.Txn.AppID] = true
		case a.Add != nil:
			if adds[a.Add.Path] {
				return nil, fmt.Errorf("delta: two add actions of %s in one commit", a.Add.Path)
			}
			adds[a.Add.Path] = true
		case a.Remove != nil:
			if removes[a.Remove.Path] {
				return nil, fmt.Errorf("delta: two remove actions of %s in one commit", a.Remove.Path)
			}
			removes[a.Remove.Path] = true
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("delta: %w", err)
		}
		out = append(append(out, b...), '\n')
	}
	for p := range adds {
		if removes[p] {
			return nil, fmt.Errorf("delta: %s is both added and removed in one commit", p)
		}
	}
	if meta > 1 || proto > 1 {
		return nil, fmt.Errorf("delta: a commit holds %d metaData and %d protocol actions, at most one each", meta, proto)
	}
	return out, nil
}
