package lake

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Incremental-update folder mode (reference section 1): every interval gets
// a folder named by its UTC start, dots for colons, holding the data files
// of the changes committed in that interval and, once the interval is over,
// its own model.json, OptionsetMetadata/ and
// Microsoft.Athena.TrickleFeedService/. Changelog/changelog.info names the
// folder being written; consumers read only older folders.
//
// The committed state names every data file, in whatever folder, so readers
// of the lake database see all of them; the folders' manifests are derived
// output like the root model.json. A folder's model.json is an empty object
// until the folder is finished. The folder of every interval in which the
// lake was written (a commit or a Maintain round) is created as soon as it
// is current, data or not. The root model.json, OptionsetMetadata/ and
// Microsoft.Athena.TrickleFeedService/ are written as in the other mode
// (consumers discover the tables from them); no snapshots are taken.

const (
	changelogDir  = "Changelog/"
	changelogName = changelogDir + "changelog.info"
	folderLayout  = "2006-01-02T15.04.05Z"
)

// incrementalRE matches objects inside an incremental-update folder.
var incrementalRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}\.[0-9]{2}\.[0-9]{2}Z/`)

func isIncrementalObject(name string) bool { return incrementalRE.MatchString(name) }

// folderOf names the folder of the interval holding t.
func (l *csvFormat) folderOf(t time.Time) string {
	iv := l.opts.Incremental.Interval
	return time.Unix(0, t.UnixNano()-t.UnixNano()%int64(iv)).UTC().Format(folderLayout)
}

// tableDir is where a commit at now writes a table's new partition files.
func (l *csvFormat) tableDir(name string, now time.Time) string {
	if !l.opts.Incremental.Enabled {
		return name
	}
	return l.folderOf(now) + "/" + name
}

// folderOfPath returns the incremental folder of an object name, or "":
// a partition file of the state (under _lakelink/data/) or a published one.
func folderOfPath(name string) string {
	name = strings.TrimPrefix(name, dataDir)
	if !isIncrementalObject(name) {
		return ""
	}
	return name[:strings.IndexByte(name, '/')]
}

// incrementalFolders lists the folders the state's files live in, oldest first.
func incrementalFolders(s *State) []string {
	seen := map[string]bool{}
	for _, ts := range s.Tables {
		for _, f := range ts.Files {
			if fo := folderOfPath(f.Path); fo != "" {
				seen[fo] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// advanceFolders brings the incremental folders up to date with now. Every
// older folder that is not finished (one that holds data, and the one
// announced last, data or not) gets its manifests; then the folder of now
// is created, with an empty model.json and its OptionsetMetadata/, before
// changelog.info names it, so that a consumer never finds the named folder
// missing. It runs after each commit and in Maintain; the finished set and
// the announced folder are recomputed from the store after a restart, so a
// crash between a commit and this step only delays it. metaChanged says the
// lake-wide metadata changed since the last round.
func (l *csvFormat) advanceFolders(ctx context.Context, s *State, metaChanged bool) error {
	current := l.folderOf(l.now())
	if l.finished == nil {
		if err := l.loadFolders(ctx, s); err != nil {
			return err
		}
	}
	pending := incrementalFolders(s)
	if l.announced != "" {
		pending = append(pending, l.announced)
	}
	for _, f := range pending {
		if f >= current || l.finished[f] {
			continue
		}
		if err := l.finishFolder(ctx, s, f); err != nil {
			return err
		}
		l.finished[f] = true
	}
	if current != l.announced || metaChanged {
		if _, err := l.putIfChanged(ctx, current+"/"+modelName, []byte("{}")); err != nil {
			return err
		}
		files, err := metadataCSVs(s, s.TableNames())
		if err != nil {
			return err
		}
		for _, f := range metadataFiles {
			if _, err := l.putIfChanged(ctx, current+"/"+optionsetDir+f, files[f]); err != nil {
				return err
			}
		}
	}
	if _, err := l.putIfChanged(ctx, changelogName, []byte(current)); err != nil {
		return err
	}
	l.announced = current
	return nil
}

// loadFolders recomputes, after a restart, which folders are finished (their
// model.json is more than the empty object) and which one changelog.info
// announced.
func (l *csvFormat) loadFolders(ctx context.Context, s *State) error {
	l.finished = map[string]bool{}
	data, err := store.ReadAll(ctx, l.st, changelogName)
	switch {
	case errors.Is(err, store.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", changelogName, err)
	case incrementalRE.MatchString(string(data) + "/"):
		l.announced = string(data)
	}
	folders := incrementalFolders(s)
	if l.announced != "" {
		folders = append(folders, l.announced)
	}
	for _, f := range folders {
		objs, err := l.st.List(ctx, f+"/"+modelName)
		if err != nil {
			return fmt.Errorf("listing incremental folder %s: %w", f, err)
		}
		if len(objs) == 1 && objs[0].Size > 2 {
			l.finished[f] = true
		}
	}
	return nil
}

// finishFolder publishes a folder's Synapse-named files and writes its
// manifests: every table, with its published files in the folder as its
// partitions.
func (l *csvFormat) finishFolder(ctx context.Context, s *State, folder string) error {
	// Written once, so not through the change-detecting cache.
	put := func(ctx context.Context, name string, data []byte) (bool, error) {
		return true, store.Put(ctx, l.st, name, data)
	}
	sub := &State{Seq: s.Seq, Tables: map[string]*TableState{}}
	for name, ts := range s.Tables {
		c := *ts
		files, err := l.publishFolder(ctx, folder, ts)
		if err != nil {
			return err
		}
		c.Snapshots = []Snapshot{{Files: files}}
		sub.Tables[name] = &c
		if _, err := l.writeTableFiles(ctx, &c, folder+"/", put); err != nil {
			return err
		}
	}
	// model.json comes last: its content marks the folder finished.
	if err := l.writeLakeWide(ctx, sub, folder+"/", put); err != nil {
		return fmt.Errorf("finishing incremental folder %s: %w", folder, err)
	}
	return nil
}
