package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store"
)

// State is a table's sync state as lakelink status shows it: Synapse's
// names, plus Throttled and Paused while a running sync waits.
type State string

// Table states.
const (
	NotStarted State = "NotStarted"
	InProgress State = "InProgress"
	Completed  State = "Completed"
	Failed     State = "Failed"
	Throttled  State = "Throttled"
	Paused     State = "Paused"
)

// TableStatus is one table's line of lakelink status.
type TableStatus struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Rows counts records (in-place) or changes (append-only), as committed.
	Rows int64 `json:"rows"`
	// Copied counts the rows the running initial sync has committed.
	Copied           int64     `json:"copied,omitempty"`
	LastSynchronized time.Time `json:"last_synchronized,omitzero"`
	// Lag is how far the lake may be behind the source: the time since the
	// table was last known to be current.
	Lag   Duration `json:"lag_seconds"`
	Error string   `json:"error,omitempty"`
}

// Duration marshals as seconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Seconds())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = Duration(s * float64(time.Second))
	return nil
}

// Report is what `lakelink status` prints: the link's tables, from the
// committed lake state, overlaid with what a running sync reports.
type Report struct {
	Link string `json:"link"`
	// Running is true when a sync process reported within the last few seconds.
	Running bool          `json:"running"`
	Tables  []TableStatus `json:"tables"`
	// Source reports on the source's side of the link where it keeps
	// state for it (a Postgres replication slot).
	Source *SourceStatus `json:"source,omitempty"`
}

// SourceStatus is what the source holds back for the link.
type SourceStatus struct {
	// Retained is the WAL the source keeps for the link, in bytes.
	Retained int64 `json:"retained_bytes"`
	// Lag is how far the link's replication is behind, as the source
	// measures it.
	Lag Duration `json:"lag_seconds"`
	// Warning is set when Retained passes RetainedWarning.
	Warning string `json:"warning,omitempty"`
	// Error is set when the source could not be asked.
	Error string `json:"error,omitempty"`
}

// RetainedWarning is the retained WAL above which status warns: past it the
// source's disk fills for a link that is stopped or too slow.
const RetainedWarning = 1 << 30

// A running sync publishes its live status in two objects: statusObject,
// each table's live state, rewritten only when a table's state, error or
// copy progress changes; and heartbeatObject, small, every second, which
// says the sync runs and how current its streaming tables are. Row counts
// and the committed sync times come from the lake state, which status reads
// anyway, so a one-row change rewrites neither the table list nor anything
// that grows with the number of tables (#16). They are a convenience for
// `lakelink status`, not part of the lake's truth: losing them loses nothing.
const (
	statusObject    = "_lakelink/status.json"
	heartbeatObject = "_lakelink/heartbeat.json"
)

// liveTables is the content of statusObject. Its TableStatus entries carry
// no Rows, LastSynchronized or Lag: those move with every commit.
type liveTables struct {
	PID    int           `json:"pid"`
	Tables []TableStatus `json:"tables"`
}

// heartbeat is the content of heartbeatObject.
type heartbeat struct {
	Updated time.Time `json:"updated"`
	PID     int       `json:"pid"`
	// Stopped is set by the last heartbeat a sync writes as it exits.
	Stopped bool `json:"stopped,omitempty"`
	// Current is when the least recently polled of the streaming tables
	// was last known to be current with the source: every Completed table
	// of the live status was current then (zero when none streams).
	Current time.Time `json:"current,omitzero"`
}

// staleAfter is how old a heartbeat may be before status treats the sync
// as not running.
const staleAfter = 5 * time.Second

// ReadReport builds the status of the lake in st at time now.
func ReadReport(ctx context.Context, st store.Store, now time.Time) (*Report, error) {
	state, err := lake.ReadState(ctx, st)
	if err != nil {
		return nil, err
	}
	r := &Report{Link: state.Link}
	var hb heartbeat
	if err := readJSON(ctx, st, heartbeatObject, &hb); err != nil {
		return nil, err
	}
	r.Running = !hb.Updated.IsZero() && !hb.Stopped && now.Sub(hb.Updated) < staleAfter
	var live liveTables
	if r.Running {
		if err := readJSON(ctx, st, statusObject, &live); err != nil {
			return nil, err
		}
		r.Running = live.PID == hb.PID
	}
	byName := map[string]TableStatus{}
	if r.Running {
		for _, t := range live.Tables {
			byName[t.Name] = t
		}
	}
	for name, ts := range state.Tables {
		committed := fromLake(ts, now)
		s, ok := byName[name]
		if !ok {
			byName[name] = committed
			continue
		}
		s.Rows, s.LastSynchronized = committed.Rows, committed.LastSynchronized
		if s.State == Completed && hb.Current.After(s.LastSynchronized) {
			s.LastSynchronized = hb.Current
		}
		if !s.LastSynchronized.IsZero() {
			s.Lag = Duration(now.Sub(s.LastSynchronized))
		}
		byName[name] = s
	}
	for _, s := range byName {
		r.Tables = append(r.Tables, s)
	}
	sort.Slice(r.Tables, func(i, j int) bool { return r.Tables[i].Name < r.Tables[j].Name })
	return r, nil
}

// readJSON decodes the object name into v; a missing object leaves v as is.
func readJSON(ctx context.Context, st store.Store, name string, v any) error {
	b, err := store.ReadAll(ctx, st, name)
	switch {
	case errors.Is(err, store.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// fromLake derives a table's status from its committed state alone.
func fromLake(ts *lake.TableState, now time.Time) TableStatus {
	s := TableStatus{Name: ts.Name, Rows: ts.Rows, LastSynchronized: ts.LastSynchronized, Error: ts.Reason}
	switch ts.Phase {
	case lake.Completed:
		s.State = Completed
	case lake.Failed:
		s.State = Failed
	default:
		s.State = InProgress
	}
	if !ts.LastSynchronized.IsZero() {
		s.Lag = Duration(now.Sub(ts.LastSynchronized))
	}
	return s
}
