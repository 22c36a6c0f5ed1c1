package source

import (
	"context"
	"errors"
	"time"
)

// Optional interfaces. A connector implements the ones that apply to it;
// callers find them with a type assertion on the opened Source (or ask
// Implements before opening one), never by converting to a concrete
// connector type.

// Lifecycle is implemented by a source that keeps objects for the link in
// the source environment (PostgreSQL: its logical replication slot and the
// publication lakelink created) that must go when the link goes.
//
// There is no hook for the link's creation: a source creates what it keeps
// when Copy first needs it (PostgreSQL's first copy creates the slot, so
// that it reads under the snapshot the slot's creation exports), so no
// step has to run before the first sync.
type Lifecycle interface {
	// Deleted removes what the source keeps for the link in the source
	// environment, so that it stops holding resources (WAL) for it;
	// lakelink unlink calls it before it removes the link's lake state.
	//
	// Contract:
	//   - It is called with no Copy or Stream of the link running, in this
	//     process or another (unlink refuses while a sync runs); a source
	//     may fail while one still holds an object, saying to stop it.
	//   - It is idempotent: an object already gone is not an error, so an
	//     unlink that failed half way can simply be run again.
	//   - It removes only what lakelink created: an object the user made
	//     and named in the profile (a publication) stays.
	//   - Afterwards every cursor of the link is expired: a Stream from one
	//     returns a *CursorExpiredError for each table, and the next sync
	//     copies them afresh.
	Deleted(ctx context.Context) error
}

// HealthReporter is implemented by a source that holds data back at the
// source environment until the link has read it (PostgreSQL: the WAL a
// replication slot retains), which lakelink status reports and warns on.
type HealthReporter interface {
	// Health reads from the source environment what it keeps for the link.
	//
	// Contract:
	//   - It only reads: it changes nothing, confirms no position.
	//   - It works with or without a Stream of the link running, in this
	//     process or another (status runs beside sync).
	//   - When there is nothing to report on yet, or any more (the link
	//     has not copied a table, or was unlinked), it returns an error that
	//     says so, rather than a zero Health that would read as caught up.
	Health(ctx context.Context) (Health, error)
}

// Health is what a source environment holds back for the link.
type Health struct {
	// Retained is what the source environment keeps until the link reads
	// it, in bytes (PostgreSQL: the WAL written past the slot's confirmed
	// position).
	Retained int64
	// Lag is how far behind the link reads, as the source environment
	// measures it; 0 when it is caught up or nothing streams.
	Lag time.Duration
}

// Joiner is implemented by a source whose change stream takes more tables
// while it runs, so that a table whose copy ends joins the running stream
// instead of the stream restarting over every table (each restart reads
// every streamed table again: O(tables) work per copy that ends, #16).
// The engine uses it in place of Stream when a source has it.
type Joiner interface {
	// StreamJoin is Stream, and each map received from join adds its
	// tables to the running stream, each from its cursor (as Copy's last
	// batch returned it), under the same contract: batches name them from
	// then on. The caller sends a table at most once per StreamJoin and
	// only tables the stream does not follow. A source that cannot take a
	// table at its cursor without reading back what it already read past
	// (PostgreSQL, when the table changed since its copy's snapshot)
	// returns an error wrapping ErrRestart: the caller then starts the
	// stream again with every table. A nil join is Stream.
	StreamJoin(ctx context.Context, cursors map[string]string, join <-chan map[string]string, emit func(context.Context, Batch) error) error
}

// ErrRestart ends a StreamJoin that cannot take a joining table in place:
// start the stream again, with every table, from the committed cursors.
// It is no failure: nothing was lost, and no back-off is due.
var ErrRestart = errors.New("the change stream must restart to take a joining table")
