package lake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/store"
)

// csvFormat is the Format of Azure Synapse Link for Dataverse's CSV lake
// (docs/lake-format.md): header-less CSV partition files under
// _lakelink/data/, merge-on-read change files under _lakelink/changes/,
// published copies under Synapse names (publish.go), snapshots, model.json
// and the metadata CSVs (model.go), incremental-update folders
// (incremental.go).
type csvFormat struct {
	o    *Objects
	st   store.Store
	opts Options
	// derived caches the derived files as last written, guarded by the
	// Maintain round that calls Derive (model.go).
	derived derivedCache
	// finished holds the incremental folders whose manifests are written;
	// nil until first computed.
	finished map[string]bool
	// announced is the folder changelog.info names.
	announced string
}

var _ Format = (*csvFormat)(nil)

func newCSVFormat(opts Options) *csvFormat { return &csvFormat{opts: opts} }

func init() { RegisterFormat(DefaultFormat, openCSVFormat) }

// openCSVFormat makes the Synapse format of a profile: its snapshots and
// incremental_folders keys.
func openCSVFormat(p FormatParams) (Format, error) {
	var o Options
	if pr := p.Profile; pr != nil {
		o.SnapshotInterval = pr.Snapshots.Interval.Duration
		if pr.Snapshots.Keep != nil {
			o.SnapshotsToKeep = *pr.Snapshots.Keep
			if o.SnapshotsToKeep == 0 {
				o.SnapshotsToKeep = -1 // withDefaults reads 0 as its default
			}
		}
		o.Incremental = Incremental{Enabled: pr.IncrementalFolders.Enabled, Interval: pr.IncrementalFolders.Interval.Duration}
	}
	return newCSVFormat(o.withDefaults()), nil
}

// Open implements Format.
func (l *csvFormat) Open(o *Objects, s *State, objs []store.Object) error {
	if l.o != nil {
		return errors.New("the Synapse format already serves a lake: give each lake a format of its own")
	}
	l.o, l.st = o, o.Store()
	l.notePublished(objs, s)
	return nil
}

func (l *csvFormat) now() time.Time { return l.o.Now() }

// State returns the lake's latest committed state.
func (l *csvFormat) State() *State { return l.o.State() }

// reservedNames are top-level lake folders that are not tables.
var reservedNames = map[string]bool{
	"OptionsetMetadata": true, "Microsoft.Athena.TrickleFeedService": true,
	"Changelog": true, "model.json": true,
}

// Options implements Format: append-only when the source or the
// incremental folder mode forces it, Year partitions by default.
func (l *csvFormat) Options(d Definition) (TableOptions, error) {
	o := d.Options
	if g := o.Granularity; g != "" && g != Year && g != Month {
		name := ""
		if d.Source != nil {
			name = d.Source.Name
		}
		return o, fmt.Errorf("commit: table %s: partition granularity %q is not supported; use Year or Month", name, g)
	}
	if (d.Source != nil && d.Source.AppendOnly) || l.opts.Incremental.Enabled {
		o.AppendOnly = true
	}
	if o.Granularity == "" {
		o.Granularity = Year
	}
	return o, nil
}

// Layout implements Format (layout.go). A table's folder is named after
// it, so it cannot take a name of the lake's own folders.
func (l *csvFormat) Layout(old []Column, prev, t *schema.Table) ([]Column, error) {
	if reservedNames[t.Name] {
		return nil, fmt.Errorf("table name %q cannot name a lake folder: use letters, digits, '_', '.', '-', not a reserved folder name", t.Name)
	}
	if old == nil {
		return newLayout(t)
	}
	return evolveLayout(old, prev, t)
}

// Owns implements Format. Data: a change file, a partition file (under
// _lakelink/data/; lakes written before Synapse names kept them in the
// table folders, named alike) or a snapshot. Published files
// (<table>/2024.csv) and a finished incremental folder's files are derived
// output, never orphans. Output: the table folders of s, model.json, the
// metadata folders and the incremental folders.
func (l *csvFormat) Owns(name string, s *State) (data, output bool) {
	data = isOrphanCandidate(name)
	for _, p := range []string{modelName, trickleDir, optionsetDir, changelogDir} {
		output = output || strings.HasPrefix(name, p)
	}
	if t, _, ok := strings.Cut(name, "/"); ok && s != nil && s.Tables[t] != nil {
		output = true
	}
	return data, output || isIncrementalObject(name)
}

// Plan implements Format: step 1 compacts in-place tables (or merges their
// change files, or small files, where nothing is compacted), step 2 takes
// snapshots.
func (l *csvFormat) Plan(s *State, now time.Time, settle bool) ([]Step, func() bool) {
	due := map[string]bool{}
	for name, ts := range s.Tables {
		due[name] = l.snapshotDue(ts, now)
	}
	var compacted atomic.Bool
	compact := Step{
		Due: func(ts *TableState) bool {
			return l.compactionDue(ts, now, due[ts.Name], settle) || len(ts.Changes) >= changeFilesToMerge ||
				!l.opts.Incremental.Enabled && mayMergeFiles(ts)
		},
		Prepare: func(ctx context.Context, ts *TableState) (Work, error) {
			if l.compactionDue(ts, now, due[ts.Name], settle) {
				limit := foldFactor * int64(l.opts.CompactRows)
				switch {
				case due[ts.Name]:
					limit = math.MaxInt64
				case settle:
					limit *= 2
				}
				c, err := l.compact(ctx, ts, limit)
				if err != nil {
					return nil, fmt.Errorf("compacting table %s: %w", ts.Name, err)
				}
				compacted.Store(true)
				return c, nil
			}
			if len(ts.Changes) >= changeFilesToMerge {
				return l.mergeChanges(ctx, ts)
			}
			if l.opts.Incremental.Enabled {
				// Files stay in the folder of their interval.
				return nil, nil
			}
			c, err := l.mergeSmallFiles(ctx, ts, settle)
			if c == nil || err != nil {
				return nil, err
			}
			return c, nil
		},
	}
	// A snapshot copies the partition files, which always hold the table
	// as of one commit (compactions are atomic); step 1 folded every
	// change committed before this round, so they hold it as of then.
	// Change files committed during step 1 are left for the next
	// snapshot: waiting for none would starve snapshots of a table that
	// changes every second. A table whose compaction failed still has
	// older change files and is skipped.
	snapshot := Step{
		Due: func(ts *TableState) bool { return due[ts.Name] && !l.opts.Incremental.Enabled },
		Prepare: func(ctx context.Context, ts *TableState) (Work, error) {
			if !due[ts.Name] || l.opts.Incremental.Enabled {
				return nil, nil
			}
			for _, f := range ts.Changes {
				if f.Written.Before(now) {
					return nil, nil
				}
			}
			snap, err := l.takeSnapshot(ctx, ts, now)
			if err != nil {
				return nil, fmt.Errorf("snapshot of table %s: %w", ts.Name, err)
			}
			return &snapshotWork{table: ts.Name, generation: ts.Generation, snap: snap, keep: l.opts.SnapshotsToKeep}, nil
		},
	}
	return []Step{compact, snapshot}, compacted.Load
}

// compactQuiet is how long a table must go without a new change file for
// its pending rows alone to make a compaction due. While a bulk change
// streams in, folding every CompactRows rows rewrote the same partition
// files again and again and took the CPU the stream needed (a 1M-row
// update: five compactions during the stream, and the stream 35% slower
// than pg_recvlogical); CompactAge still bounds how stale the partition
// files get.
const compactQuiet = time.Second

func (l *csvFormat) compactionDue(ts *TableState, now time.Time, snapshotDue, settle bool) bool {
	n := len(ts.Changes)
	if n == 0 {
		return false
	}
	var rows int64
	for _, f := range ts.Changes {
		rows += f.Rows
	}
	quiet := settle || now.Sub(ts.Changes[n-1].Written) >= compactQuiet
	return snapshotDue || (rows >= int64(l.opts.CompactRows) && quiet) || now.Sub(ts.Changes[0].Written) >= l.opts.CompactAge
}

// mayMergeFiles reports whether ts has enough partition files for
// mergeSmallFiles to find a merge: two in a published file of an
// append-only table, smallFilesToMerge in a partition of an in-place one.
func mayMergeFiles(ts *TableState) bool {
	if ts.Options.AppendOnly {
		return len(ts.Files) >= 2
	}
	return len(ts.Files) >= smallFilesToMerge
}

// dataFileRE matches the partition files lakelink writes (partitionName);
// snapshotRE its snapshot files. Orphan clean-up only ever deletes objects
// that match these or live under _lakelink/changes/, so that it never
// touches a file someone else put in the lake.
var (
	dataFileRE = regexp.MustCompile(`^([^/]+)/[^/_]+_[0-9]+_[0-9a-f]+_[0-9]+\.csv$`)
	snapshotRE = regexp.MustCompile(`^([^/]+)/Snapshot/[^/_]+_[0-9]+(_[0-9]+)?\.csv$`)
)

// isOrphanCandidate reports whether name is a data object lakelink writes:
// a change file, a partition file (under _lakelink/data/; lakes written
// before Synapse names kept them in the table folders, named alike) or a
// snapshot. Published files (<table>/2024.csv) and a finished incremental
// folder's files are derived output, never orphans.
func isOrphanCandidate(name string) bool {
	if strings.HasPrefix(name, changesDir) {
		return strings.HasSuffix(name, ".csv")
	}
	name = strings.TrimPrefix(name, dataDir)
	if m := dataFileRE.FindStringSubmatch(name); m != nil {
		return !reservedNames[m[1]] && !strings.HasPrefix(m[1], "_")
	}
	if fo := folderOfPath(name); fo != "" {
		return dataFileRE.MatchString(name[len(fo)+1:])
	}
	if m := snapshotRE.FindStringSubmatch(name); m != nil {
		return !reservedNames[m[1]] && !strings.HasPrefix(m[1], "_")
	}
	return false
}
