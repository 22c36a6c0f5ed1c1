// Package source defines what a source connector is: the Source interface
// every connector implements (docs/decisions.md, decision 6) with the
// changes and batches it delivers, the optional interfaces a connector
// implements where they apply (Lifecycle, HealthReporter), and the
// registry that opens a connector by a profile's source.type. The sync
// engine, package link and the commands know sources only through it;
// docs/architecture.md ("Sources") says how a new connector plugs in.
//
// It imports only internal/schema (table descriptions) and internal/config
// (the profile a connector's constructor reads). Connectors live in the
// subpackages (dataverse, postgres) and import this package and schema
// (config at most), never each other nor the engine or the lake; each runs
// the contract suite, package sourcetest, against a real server.
package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/lakelink/lakelink/internal/schema"
)

// Source is a connected source environment.
//
// Contract shared by all implementations:
//   - Copy and Stream call emit from one goroutine per call; emit returns nil
//     only once the batch is durably committed to the lake. A source may then
//     release what the batch's cursors cover (acknowledge an LSN, say).
//   - Delivery is at least once: after a restart from a committed cursor a
//     source may deliver a change again. The lake applies changes
//     idempotently by (ID, Version), so that is safe. A truncate
//     (Change.Truncate) delivered again comes with every change after it
//     again, so the table converges all the same.
//   - Version strictly increases across the successive changes of one ID.
type Source interface {
	// Tables lists the tables the source can link.
	Tables(ctx context.Context) ([]TableInfo, error)
	// Describe returns a table's schema, key and choice metadata. It returns
	// a *NotTrackedError for a table whose changes cannot be followed.
	Describe(ctx context.Context, table string) (*schema.Table, error)
	// Copy reads the initial copy of table, in batches. resume is empty for a
	// fresh copy, or a cursor a previous Copy batch carried. Every batch
	// carries the cursor to resume after it; the last batch has Done set and
	// carries the cursor Stream starts from. If resume can no longer be used,
	// Copy returns an error wrapping ErrCursorExpired and the table must be
	// copied afresh.
	Copy(ctx context.Context, table string, resume string, emit func(context.Context, Batch) error) error
	// Stream delivers the changes of the given tables, each from its cursor
	// (as returned by Copy or by an earlier Stream batch), until ctx ends or
	// an error occurs. A batch with no changes reports that the tables it
	// names are caught up at its cursors. A table whose cursor expired is
	// reported by an error wrapping ErrCursorExpired that names it
	// (*CursorExpiredError).
	Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, Batch) error) error
	// Close releases connections.
	Close() error
}

// TableInfo is one entry of Tables.
type TableInfo struct {
	Name string
	// Tracked is false when change tracking is off for the table.
	Tracked bool
}

// Change is one insert, update or delete of one record.
type Change struct {
	Table string
	// ID is the record key, as the lake's Id column holds it.
	ID string
	// Version orders the changes of one ID (the lake's versionnumber).
	Version int64
	// Deleted marks a delete; Values is then nil.
	Deleted bool
	// Truncate marks the removal of every record of Table at this point
	// (PostgreSQL's TRUNCATE): the table is empty after it, and the
	// changes of Table that follow it, in this batch and later ones,
	// apply to the empty table. ID, Columns and Values are empty; Version
	// orders it among the table's changes like any change, above every
	// version the table held before. A source never delivers, after a
	// truncate, a change of the table with a lower version. The lake
	// applies it in the commit of the batch that carries it: an in-place
	// table's data is dropped, an append-only table records a delete of
	// every record (docs/sync.md, "TRUNCATE").
	Truncate bool
	// Columns names Values, in order; a column it leaves out is NULL.
	// Changes a source decoded under one schema share one Columns slice,
	// which is never modified after it is handed out: a consumer maps it
	// to its own layout once per distinct slice (same backing array and
	// length), not per row. A new schema gets a new slice.
	Columns []string
	// Values holds the value of each of Columns, as package schema
	// describes them (len(Values) == len(Columns)); nil for a delete.
	Values []any
}

// Batch is a unit the engine commits atomically: its changes together with
// the cursors that follow them.
type Batch struct {
	Changes []Change
	// Cursors holds, for each table the batch advances, the position after it.
	Cursors map[string]string
	// Position, when set, says every table of the stream is at this one
	// cursor (all of Cursors equal it): the engine may commit it once for
	// all of them (lake.State.StreamCursor) instead of a cursor per table.
	// A source that sets it releases (acknowledges) a position only when
	// emit accepted a batch whose Position reached it, so that an idle
	// table's committed cursor is never behind what the source released.
	Position string
	// Done marks the last batch of a Copy.
	Done bool
	// Partial marks a part of one source transaction too large for a
	// batch; it has no Cursors. The batches after it carry the rest, up
	// to the first that is not Partial, which ends the transaction: the
	// engine makes the parts visible in the lake together with it, in one
	// commit, so readers never see a transaction half applied.
	Partial bool
	// Schemas holds the new description of each table whose schema changed
	// at the source before this batch's changes; the engine commits it with
	// the batch, so the layout evolves exactly where the data does.
	Schemas map[string]*schema.Table
}

// Events receives what a source wants the table status to show while it
// works. Every method may be called from several goroutines.
type Events interface {
	// Throttled reports that the source asked lakelink to wait (HTTP 429,
	// service protection) before reading table again.
	Throttled(table string, reason string)
	// Unreachable reports that reads of table fail in a way worth
	// retrying that is not throttling (the connection is refused or
	// broken, the service answers 5xx): the source keeps retrying.
	Unreachable(table string, reason string)
	// Unthrottled reports that reads of table go through again, after
	// Throttled or Unreachable.
	Unthrottled(table string)
}

// ErrCursorExpired reports a cursor (delta token, replication position) the
// source no longer honours: the table must be copied afresh.
var ErrCursorExpired = errors.New("cursor expired")

// CursorExpiredError names the table whose cursor expired.
type CursorExpiredError struct {
	Table  string
	Reason string
}

func (e *CursorExpiredError) Error() string {
	return fmt.Sprintf("table %s: cursor expired (%s); the table will be copied afresh", e.Table, e.Reason)
}

func (e *CursorExpiredError) Unwrap() error { return ErrCursorExpired }

// NotTrackedError reports a table whose changes the source cannot follow.
type NotTrackedError struct {
	Table string
	// Fix says what the user can do about it.
	Fix string
}

func (e *NotTrackedError) Error() string {
	return fmt.Sprintf("table %s cannot be linked: change tracking is off; %s", e.Table, e.Fix)
}
