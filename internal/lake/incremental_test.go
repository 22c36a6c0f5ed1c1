package lake

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

// folderRows reads the finished incremental folders of the lake at root as
// a consumer does (the folders older than the one changelog.info names,
// each folder's model.json for the schema, every <folder>/<table>/*.csv)
// and returns, per Id of table, the folders whose files hold a row of it.
func folderRows(t *testing.T, root, table string) map[string][]string {
	t.Helper()
	announced, err := os.ReadFile(filepath.Join(root, changelogName))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range dirs {
		if _, ok := folderTime(d.Name()); !ok || !d.IsDir() || d.Name() >= string(announced) {
			continue
		}
		es, err := readEntities(t, filepath.Join(root, d.Name(), modelName), false)
		if err != nil {
			t.Fatal(err)
		}
		ent := entityNamed(es, table)
		if ent == nil {
			t.Fatalf("finished folder %s: model.json has no entity %s", d.Name(), table)
		}
		id := attrIndex(ent, "Id")
		err = filepath.WalkDir(filepath.Join(root, d.Name(), table), func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".csv") {
				return err
			}
			for _, rec := range readCSV(t, "folder reader", p) {
				out[rec[id].v] = append(out[rec[id].v], d.Name())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestIncrementalStageAcrossFolders: a transaction staged (StageTx) while
// the clock crosses incremental-folder boundaries, each older folder
// finished by a Maintain round before the commit, reaches the folder
// consumers whole: once the commit's folder is finished, every row of the
// lake is in exactly one finished folder, and the lake's own reader sees
// them all. A commit that fails first (another table of its Tx is
// unknown) and is retried leaves the same. The staged files copied into the
// commit's folder are the commit's garbage, collected after the grace.
func TestIncrementalStageAcrossFolders(t *testing.T) {
	const before, parts, perPart = 5, 3, 8
	for _, tt := range []struct {
		name string
		// boundaries is how many folder boundaries the clock crosses
		// while the stage is written.
		boundaries int
		retry      bool
	}{
		{"one interval", 0, false},
		{"one boundary", 1, false},
		{"two boundaries", 2, false},
		{"two boundaries, commit retried", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const iv = 15 * time.Minute
			c := newClock()
			st := newStore(t)
			l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, MaxFileRows: 5, Incremental: Incremental{Enabled: true, Interval: iv}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			maintain := func() {
				t.Helper()
				if err := l.Maintain(ctxT(t)); err != nil {
					t.Fatal(err)
				}
			}
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: accounts(0, before, t0), Phase: Completed}}})
			maintain()
			c.add(time.Minute)
			stg, err := l.StageTx("account")
			if err != nil {
				t.Fatal(err)
			}
			n := before
			for part := range parts {
				var chs []source.Change
				for range perPart {
					chs = append(chs, account(n, 1, "staged", t0))
					n++
				}
				if err := stg.Add(ctxT(t), chs); err != nil {
					t.Fatal(err)
				}
				if part < tt.boundaries {
					c.add(iv)
					maintain()
				}
			}
			if tt.retry {
				if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Stage: stg, Cursor: "c1"}, {Name: "nosuch"}}}); err == nil {
					t.Fatal("commit with a table the lake does not have succeeded")
				}
			}
			s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: stg, Cursor: "c1"}}})
			maintain()
			c.add(iv)
			maintain()

			if got := len(current(t, st, s.Tables["account"])); got != n {
				t.Errorf("the lake's reader sees %d rows, want %d", got, n)
			}
			commitFolder := c.t.Add(-iv).Truncate(iv).UTC().Format(folderLayout)
			got := folderRows(t, st.Root(), "account")
			for i := range n {
				switch fs := got[guid(i)]; {
				case len(fs) != 1:
					t.Errorf("row %d is in the finished folders %v, want exactly one", i, fs)
				case i >= before && fs[0] != commitFolder:
					t.Errorf("staged row %d is in folder %s, want the commit's %s", i, fs[0], commitFolder)
				}
			}
			if len(got) != n {
				t.Errorf("the finished folders hold %d rows, want %d", len(got), n)
			}
			checkMovedGarbage(t, l, st, s, tt.boundaries > 0)
		})
	}
}

// checkMovedGarbage checks that the state s names only files of the
// commit's folders and that the staged files copied out of older ones are
// garbage (moved), deleted once the grace period passed.
func checkMovedGarbage(t *testing.T, l *Lake, st *local.Store, s *State, moved bool) {
	t.Helper()
	var garbage []string
	for _, g := range s.Garbage {
		garbage = append(garbage, g.Path)
	}
	if moved != (len(garbage) > 0) {
		t.Fatalf("the commit's garbage is %v; want staged files copied out of older folders: %v", garbage, moved)
	}
	for _, p := range garbage {
		if slices.ContainsFunc(s.Tables["account"].Files, func(f File) bool { return f.Path == p }) {
			t.Fatalf("garbage %s is still named by the table", p)
		}
	}
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range garbage {
		if _, err := os.Stat(filepath.Join(st.Root(), p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("garbage %s still in the store after the grace period: %v", p, err)
		}
	}
}
