package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store"
)

// State is a table's sync state as lakelink status shows it: Synapse's
// names (NotStarted, InProgress, Completed, Failed), plus the states a
// running sync reports while it waits. Every state is the table's own: one
// table's Failed, Paused or Reinitialising leaves the others as they are.
// docs/sync.md has the transitions.
type State string

// Table states.
const (
	NotStarted State = "NotStarted"
	InProgress State = "InProgress"
	// Reinitialising: the table is copied afresh (--reinit, an expired
	// cursor, changed options, a retry of a Failed table); the reason says
	// why. A table with data is copied beside it: readers see the old
	// rows (Rows) until the copy (Copied rows so far) replaces them in
	// one commit.
	Reinitialising State = "Reinitialising"
	Completed      State = "Completed"
	Failed         State = "Failed"
	// Throttled: the source asked lakelink to wait (HTTP 429).
	Throttled State = "Throttled"
	// SourceUnreachable: reads of the table fail (connection refused or
	// lost, 5xx) and are retried.
	SourceUnreachable State = "SourceUnreachable"
	// LakeUnwritable: commits to the lake fail (a read-only folder, a full
	// disk) and are retried; nothing is lost meanwhile.
	LakeUnwritable State = "LakeUnwritable"
	Paused         State = "Paused"
)

// NeedsAction reports whether a table in state s waits for someone to do
// something (the Action of its status), as opposed to a state lakelink
// leaves by itself. It decides the exit code of lakelink status.
func (s State) NeedsAction() bool {
	switch s {
	case Failed, Paused, SourceUnreachable, LakeUnwritable:
		return true
	}
	return false
}

// action is what the user should do about a table in state s, "" when
// nothing.
func action(s State, table string) string {
	switch s {
	case Throttled:
		return "none: lakelink waits as the source asks and resumes by itself; if it lasts, lower source.requests_per_second or share the service's limits with fewer clients"
	case SourceUnreachable:
		return "check that the source is up and reachable from this host (the error says what failed); lakelink retries with back-off (at most 30 s apart) and resumes by itself"
	case LakeUnwritable:
		return "make the lake folder writable (permissions, a read-only mount) or free space on its disk; lakelink retries with back-off and resumes from its last commit, losing nothing"
	case Paused:
		return "run lakelink sync -c <profile> --reinit " + table + " to copy it afresh under the new schema"
	case Failed:
		return "fix the cause the error names, then restart lakelink sync (a Failed table is copied afresh at start), or remove the table from the profile"
	}
	return ""
}

// TableStatus is one table's line of lakelink status.
type TableStatus struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Since is when the table entered State, as far as the reporter knows
	// (a running sync: since it saw it; the lake alone: the commit that
	// recorded it, when that is known).
	Since time.Time `json:"since,omitzero"`
	// Rows counts what select count(*) returns for the table as committed:
	// records (in-place) or changes (append-only). ReadReport with a
	// RowCounter counts in-place tables' uncompacted changes too.
	Rows int64 `json:"rows"`
	// Copied counts the rows the running initial sync has committed.
	Copied           int64     `json:"copied,omitempty"`
	LastSynchronized time.Time `json:"last_synchronized,omitzero"`
	// Lag is how far the lake may be behind the source: the time since the
	// table was last known to be current.
	Lag Duration `json:"lag_seconds"`
	// Error is the reason of the state: the error of Failed, Paused,
	// SourceUnreachable, LakeUnwritable and Throttled, why the table is
	// re-initialised.
	Error string `json:"error,omitempty"`
	// Action is what to do about the state, empty when nothing.
	Action string `json:"action,omitempty"`
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
	Running bool `json:"running"`
	// Updated is when the running sync last reported.
	Updated time.Time     `json:"updated,omitzero"`
	Tables  []TableStatus `json:"tables"`
	// Maintenance is set while the running sync's lake maintenance
	// (compaction, snapshots, model.json) fails: the tables stay current,
	// but their files are not compacted or published meanwhile.
	Maintenance *Problem `json:"maintenance,omitempty"`
	// Source reports on the source's side of the link where it keeps
	// state for it (a Postgres replication slot).
	Source *SourceStatus `json:"source,omitempty"`
	// Warnings are what status could not read and did without (a damaged
	// live status).
	Warnings []string `json:"warnings,omitempty"`
}

// Problem is a failure of the link as a whole, with since when it lasts
// and what to do.
type Problem struct {
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
	Action string    `json:"action"`
}

// NeedsAction reports whether some table, the lake maintenance or the
// source's replication slot waits for someone to act: the exit code 1 of
// lakelink status.
func (r *Report) NeedsAction() bool {
	for _, t := range r.Tables {
		if t.State.NeedsAction() {
			return true
		}
	}
	return r.Maintenance != nil || (r.Source != nil && (r.Source.Error != "" || r.Source.Warning != ""))
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
	// Maintenance is set while lake maintenance fails.
	Maintenance *Problem `json:"maintenance,omitempty"`
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

// fallbackStatusPath is where a running sync publishes its live status
// (fallbackStatus) while the lake refuses it (a read-only folder, a full
// disk), so that lakelink status on the same machine still shows what the
// sync sees: a file under the user's cache directory named by a hash of
// the lake's status object location.
func fallbackStatusPath(st store.Store) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user's cache directory for the fallback live status: %w", err)
	}
	sum := sha256.Sum256([]byte(st.Location(statusObject)))
	return filepath.Join(base, "lakelink-status", hex.EncodeToString(sum[:8])+".json"), nil
}

// fallbackStatus is the content of the fallback file: both objects.
type fallbackStatus struct {
	Heartbeat heartbeat  `json:"heartbeat"`
	Tables    liveTables `json:"tables"`
}

// readLive reads the live status: the lake's objects, or the fallback file
// when its heartbeat is newer. A live status that cannot be read or parsed
// is a warning, not a reason to show no table: it is a convenience, not
// the lake's truth.
func readLive(ctx context.Context, st store.Store) (live liveTables, hb heartbeat, warnings []string) {
	if err := readJSON(ctx, st, heartbeatObject, &hb); err != nil {
		warnings = append(warnings, fmt.Sprintf("the live status is damaged or unreadable (%v): showing the committed state", err))
		hb = heartbeat{}
	}
	if err := readJSON(ctx, st, statusObject, &live); err != nil {
		warnings = append(warnings, fmt.Sprintf("the live status is damaged or unreadable (%v): showing the committed state", err))
		hb = heartbeat{}
	}
	if p, err := fallbackStatusPath(st); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			var fb fallbackStatus
			if err := json.Unmarshal(b, &fb); err != nil {
				warnings = append(warnings, fmt.Sprintf("the fallback live status %s is damaged (%v)", p, err))
			} else if fb.Heartbeat.Updated.After(hb.Updated) {
				live, hb = fb.Tables, fb.Heartbeat
			}
		}
	}
	return live, hb, warnings
}

// RowCounter returns select count(*) of the tables of state whose
// committed TableState.Rows may differ from it (in-place tables with
// uncompacted change files), counted at exactly state; the other tables
// are absent. sqldb.CountRows is the one lakelink status uses; a table it
// could not count is named in the error and left out.
type RowCounter func(ctx context.Context, st store.Store, state *lake.State) (map[string]int64, error)

// ReadReport builds the status of the lake in st at time now. It fails
// only when the lake's committed state cannot be read.
//
// Invariant (#9 §4, #15 case 12): with a count, every table's Rows is what
// select count(*) of its view returns at the committed state the report
// is of. Without one (nil: callers that only want states and lags, polled
// while a benchmark measures), an in-place table's streamed changes are
// counted only once compaction folds them in.
func ReadReport(ctx context.Context, st store.Store, now time.Time, count RowCounter) (*Report, error) {
	state, err := lake.ReadState(ctx, st)
	if err != nil {
		return nil, err
	}
	r := &Report{Link: state.Link}
	live, hb, warnings := readLive(ctx, st)
	r.Warnings = warnings
	var counted map[string]int64
	if count != nil {
		counted, err = count(ctx, st, state)
		if err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("ROWS of a table with changes not compacted yet is its count at the last compaction, not what select count(*) returns: %v", err))
		}
	}
	r.Running = !hb.Updated.IsZero() && !hb.Stopped && now.Sub(hb.Updated) < staleAfter && live.PID == hb.PID
	byName := map[string]TableStatus{}
	if r.Running {
		r.Updated, r.Maintenance = hb.Updated, live.Maintenance
		for _, t := range live.Tables {
			byName[t.Name] = t
		}
	}
	for name, ts := range state.Tables {
		c := *ts
		c.LastSynchronized = state.Synchronized(ts)
		if n, ok := counted[name]; ok {
			c.Rows = n
		}
		committed := fromLake(&c, now)
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
	switch {
	case ts.Phase == lake.Failed:
		s.State = Failed
	case ts.Reinit != "":
		s.State, s.Error = Reinitialising, ts.Reinit
	case ts.Phase == lake.Completed:
		s.State = Completed
	case reinitialising(ts):
		s.State = Reinitialising
	default:
		s.State = InProgress
	}
	s.Action = action(s.State, ts.Name)
	if !ts.LastSynchronized.IsZero() {
		s.Lag = Duration(now.Sub(ts.LastSynchronized))
	}
	return s
}

// reinitialising reports whether a table's copy in progress is a copy
// afresh rather than its first: built beside its data (Reinit), or begun
// after its data was reset.
func reinitialising(ts *lake.TableState) bool {
	return ts.Reinit != "" || ts.Phase == lake.InProgress && ts.Generation > 1
}
