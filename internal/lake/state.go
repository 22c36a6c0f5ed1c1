package lake

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
)

// State is the committed state of a whole lake: what one commit record (plus
// the checkpoint it builds on) names. Readers use nothing else to find data,
// so a file a commit does not name is invisible to them.
type State struct {
	// Seq is the number of the commit that produced this state; 0 is the
	// empty lake.
	Seq int64 `json:"seq"`
	// Committed is when that commit was written.
	Committed time.Time `json:"committed"`
	// Link is the name of the link that writes the lake.
	Link string `json:"link"`
	// Tables by name.
	Tables map[string]*TableState `json:"tables"`
	// StreamCursor is the position of the link's change stream, for a
	// source whose stream serves all its tables from one position (a
	// PostgreSQL slot): the cursor of every table that FollowsStream.
	// Committing it moves them all at once, so an idle table's cursor keeps
	// up with the stream without a write per table (issue #15, case 2).
	StreamCursor string `json:"stream_cursor,omitempty"`
	// StreamSynced is the last commit at which the stream said every table
	// that follows it was current.
	StreamSynced time.Time `json:"stream_synced,omitzero"`
	// Garbage lists objects no table names any more, waiting for the grace
	// period to pass before they are deleted, so that a reader that loaded
	// an older state never finds one of its files missing.
	Garbage []Garbage `json:"garbage,omitempty"`
}

// Garbage is one object a commit stopped naming.
type Garbage struct {
	Path string `json:"path"`
	// Since is when the commit that stopped naming it was written.
	Since time.Time `json:"since"`
}

// Phase is where a table is in its life in the lake.
type Phase string

// Phases, named as Synapse names the InitialSyncState.
const (
	// InProgress: the initial copy is being written.
	InProgress Phase = "InProgress"
	// Completed: the initial copy is done; changes stream in.
	Completed Phase = "Completed"
	// Failed: the table stopped; Reason says why and what to do.
	Failed Phase = "Failed"
)

// Granularity is a table's partition strategy.
type Granularity string

// Partition strategies.
const (
	Year  Granularity = "Year"
	Month Granularity = "Month"
)

// TableOptions are the per-table options of the link profile.
type TableOptions struct {
	AppendOnly  bool        `json:"append_only"`
	Granularity Granularity `json:"granularity"`
}

// Column is one column of a table's lake layout, in file order.
type Column struct {
	Name string      `json:"name"`
	Type schema.Type `json:"type"`
	// MaxLength, Precision, Scale as in schema.Column.
	MaxLength int `json:"max_length,omitempty"`
	Precision int `json:"precision,omitempty"`
	Scale     int `json:"scale,omitempty"`
	// System marks the columns lakelink adds (Id, SinkCreatedOn,
	// SinkModifiedOn, IsDelete) rather than the source.
	System bool `json:"system,omitempty"`
	// Dropped marks a column the source no longer has: it stays in the
	// layout and is empty from then on.
	Dropped bool `json:"dropped,omitempty"`
}

// ColumnNames returns the name each column is read by, unique ignoring
// case, as SQL (the lake database's views) and Delta require and DuckDB and
// Spark resolve names: system columns keep theirs, then every other column
// whose name is still free (the first of several that clash), then each
// remaining one gets the first free <name>_<n>, n >= 2 (a PostgreSQL "id"
// beside lakelink's Id is "id_2"), so that a renamed column never takes the
// name of a real one. One rule, so every reader shows a table alike.
func ColumnNames(cols []Column) []string {
	names := make([]string, len(cols))
	taken := map[string]bool{}
	claim := func(i int, name string) {
		names[i] = name
		taken[strings.ToLower(name)] = true
	}
	for _, system := range []bool{true, false} {
		for i, c := range cols {
			if c.System == system && !taken[strings.ToLower(c.Name)] {
				claim(i, c.Name)
			}
		}
	}
	for i, c := range cols {
		if names[i] != "" {
			continue
		}
		n := 2
		for taken[strings.ToLower(fmt.Sprintf("%s_%d", c.Name, n))] {
			n++
		}
		claim(i, fmt.Sprintf("%s_%d", c.Name, n))
	}
	return names
}

// File is one committed, immutable CSV object.
type File struct {
	// Path is the object name relative to the lake root.
	Path string `json:"path"`
	// Partition is the partition the file belongs to ("2024", "2024-03"), or
	// empty for a change file of a merge-on-read table.
	Partition string `json:"partition,omitempty"`
	// Name is the Synapse name (stem) the file is published under,
	// <table>/<Name>.csv: "2024", then "2024_001", ... for a partition
	// split in several files (see publish.go). The files of an
	// append-only table that share a Name are one published file, in
	// order. Empty for change files and in incremental-update folder mode.
	Name  string `json:"name,omitempty"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
	// Written is when the file was written; compaction uses the age of
	// the oldest change file.
	Written time.Time `json:"written,omitzero"`
}

// Snapshot is one consistent read-only copy of a table under Snapshot/.
type Snapshot struct {
	Taken time.Time `json:"taken"`
	Files []File    `json:"files"`
}

// Cursor returns where ts's source position is: the stream's when the
// table follows it, else its own.
func (s *State) Cursor(ts *TableState) string {
	if ts.FollowsStream && s.StreamCursor != "" {
		return s.StreamCursor
	}
	return ts.Cursor
}

// Synchronized returns the last time the source said ts was current.
func (s *State) Synchronized(ts *TableState) time.Time {
	if ts.FollowsStream && s.StreamSynced.After(ts.LastSynchronized) {
		return s.StreamSynced
	}
	return ts.LastSynchronized
}

// TableState is the committed state of one table.
type TableState struct {
	Name    string        `json:"name"`
	Options TableOptions  `json:"options"`
	Source  *schema.Table `json:"source"`
	// Columns is the lake layout, in file order. It only grows (decision:
	// new columns are appended, dropped ones kept), so files written under an
	// older layout hold shorter rows whose missing trailing fields are NULL.
	Columns []Column `json:"columns"`
	// Files are the live partition files.
	Files []File `json:"files"`
	// Changes are merge-on-read change files of an in-place table, oldest
	// first: their rows (latest versionnumber per Id wins, IsDelete removes)
	// override Files until a compaction folds them in.
	Changes []File `json:"changes,omitempty"`
	// Snapshots, oldest first.
	Snapshots []Snapshot `json:"snapshots,omitempty"`
	Phase     Phase      `json:"phase"`
	// Reason explains Failed, or why the table was last re-initialised.
	Reason string `json:"reason,omitempty"`
	// Reinit, when set, says why the table is being copied afresh beside
	// its data (TableTx.Reinit): the data named here is the old copy,
	// which readers keep seeing until the commit that swaps the new one
	// in clears it. A writer that restarts copies the table afresh again.
	Reinit string `json:"reinit,omitempty"`
	// Cursor is the source position the table's data is current to: a Copy
	// resume cursor while InProgress, a Stream cursor once Completed.
	Cursor string `json:"cursor"`
	// FollowsStream says the table's stream cursor is the lake's
	// StreamCursor, not Cursor: every change before it has been committed
	// for this table. Only a Completed table follows; a commit that sets
	// the table's own Cursor, resets it or changes its phase ends it.
	FollowsStream bool `json:"follows_stream,omitempty"`
	// Rows counts records (in-place) or change rows (append-only).
	// Invariant: it is what select count(*) returns unless the table is
	// in-place with Changes; those are counted by compaction only, since
	// an upsert may be new or an update and only the keys tell
	// (sqldb.CountRows counts such tables for lakelink status).
	Rows int64 `json:"rows"`
	// InitialSyncCompleted is when the initial copy finished.
	InitialSyncCompleted time.Time `json:"initial_sync_completed,omitzero"`
	// LastSynchronized is the last commit that brought the table's data up to
	// date with the source.
	LastSynchronized time.Time `json:"last_synchronized,omitzero"`
	// Generation counts re-initialisations; file names carry it so that a
	// fresh copy never collides with the files of an earlier one.
	Generation int `json:"generation"`
	// Changed is when a commit last changed the table's data; a snapshot
	// is due only when it is newer than the last snapshot.
	Changed time.Time `json:"changed,omitzero"`
	// Described is when the table's source description (columns, choice
	// metadata) was first committed or last changed: the Timestamp of its
	// AttributeMetadata.
	Described time.Time `json:"described,omitzero"`
}

// TableNames returns the names of the state's tables, sorted.
func (s *State) TableNames() []string {
	return slices.Sorted(maps.Keys(s.Tables))
}
