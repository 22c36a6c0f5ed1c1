package lake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// dvToSQL re-implements the read rules of Azure/dataverse-to-sql (its
// IngestionJob and EnvironmentBase, read, not copied), against a lake folder
// as plain files, not through lakelink's reader:
//   - entities come from Microsoft.Athena.TrickleFeedService/*-model.json,
//     only those whose Athena:InitialSyncState is Completed;
//   - initial load: for each partition of the entity, copy
//     <table>/<partition name>.csv and remember its size as the offset;
//   - incremental load: list <table>/ (one level) for *.csv not yet known
//     (offset 0); for every known file read its current size (the file must
//     exist) and take the bytes from the offset to the end;
//   - option sets: split each line of OptionsetMetadata.csv and
//     GlobalOptionsetMetadata.csv on commas, entity name and column taken by
//     position.
type dvToSQL struct {
	t       *testing.T
	root    string
	table   string
	offsets map[string]int64
	// rows counts every (Id, versionnumber) read; ver is the position of
	// versionnumber in model.json's attributes.
	rows map[string]int
	ver  int
}

func (d *dvToSQL) initialLoad() {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.root, "Microsoft.Athena.TrickleFeedService", d.table+"-model.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var m struct {
		Entities []struct {
			Name        string
			Annotations []struct{ Name, Value string }
			Partitions  []struct{ Name, Location string }
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		d.t.Fatal(err)
	}
	for _, e := range m.Entities {
		completed := false
		for _, a := range e.Annotations {
			completed = completed || a.Name == "Athena:InitialSyncState" && a.Value == "Completed"
		}
		if !completed || !strings.EqualFold(e.Name, d.table) {
			continue
		}
		for _, p := range e.Partitions {
			// Partition groups: the part of the name before the first "_".
			if g := strings.Split(p.Name, "_")[0]; g == "" {
				d.t.Fatalf("partition %q has no group", p.Name)
			}
			d.read(p.Name + ".csv")
		}
		return
	}
	d.t.Fatalf("no Completed entity %s", d.table)
}

func (d *dvToSQL) incrementalLoad() {
	d.t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.root, d.table))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".csv") {
			if _, ok := d.offsets[strings.ToLower(e.Name())]; !ok {
				d.offsets[strings.ToLower(e.Name())] = 0
			}
		}
	}
	names := make([]string, 0, len(d.offsets))
	for n := range d.offsets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d.read(n)
	}
}

// read takes the bytes of <table>/name past its offset: they must be whole
// rows.
func (d *dvToSQL) read(name string) {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.root, d.table, name))
	if err != nil {
		d.t.Fatalf("a file the consumer follows: %v", err)
	}
	off := d.offsets[strings.ToLower(name)]
	if int64(len(data)) < off {
		d.t.Fatalf("%s shrank from %d to %d bytes", name, off, len(data))
	}
	added := data[off:]
	if len(added) > 0 && added[len(added)-1] != '\n' {
		d.t.Fatalf("%s grew by a partial row: %q", name, added)
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(added, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		f, err := splitFields(nil, line)
		if err != nil {
			d.t.Fatalf("%s: %v", name, err)
		}
		d.rows[f[0]+"@"+f[d.ver]]++
	}
	d.offsets[strings.ToLower(name)] = int64(len(data))
}

// TestConsumerDataverseToSQL: dataverse-to-sql's tail reading of an
// append-only table, while lakelink commits, merges published files,
// snapshots and collects garbage, reads every committed row exactly once and
// never finds a file it follows gone or shrunk (#9 §2.3); its partition
// names lead to live files (#9 §2.1).
func TestConsumerDataverseToSQL(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, MaxFileRows: 40, SnapshotInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	y := func(k int) time.Time { return time.Date(2022+k%3, 6, 1, 0, 0, 0, 0, time.UTC) }
	want := map[string]int{}
	n := 0
	commit := func(rows int, phase Phase) {
		var chs []source.Change
		for range rows {
			n++
			chs = append(chs, account(n%7, int64(n), fmt.Sprint("v", n), y(n)))
			want[fmt.Sprintf("%s@%d", guid(n%7), n)]++
		}
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{AppendOnly: true}), Changes: chs, Phase: phase}}})
	}
	commit(10, "")
	commit(3, Completed)
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d := &dvToSQL{t: t, root: st.Root(), table: "account", offsets: map[string]int64{}, rows: map[string]int{}, ver: indexesOf(l.State().Tables["account"]).version}
	d.initialLoad()
	for round := range 40 {
		commit(1+round%4, "")
		c.add(time.Duration(1+round%7) * time.Second)
		if err := l.Maintain(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		d.incrementalLoad()
	}
	if err := l.Settle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	d.incrementalLoad()
	for k, v := range want {
		if d.rows[k] != v {
			t.Errorf("row %s read %d times, want %d", k, d.rows[k], v)
		}
	}
	for k := range d.rows {
		if want[k] == 0 {
			t.Errorf("row %s read but never committed", k)
		}
	}
	if len(d.offsets) < 4 {
		t.Errorf("followed %d files, want the table split over several", len(d.offsets))
	}
}

// TestConsumerOptionsetSplit: dataverse-to-sql's option-set loader splits
// metadata lines on commas and takes the entity and column by position.
func TestConsumerOptionsetSplit(t *testing.T) {
	st := newStore(t)
	l := openLake(t, st, newClock())
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		file          string
		entity, field int
	}{{"OptionsetMetadata.csv", 0, 1}, {"GlobalOptionsetMetadata.csv", 6, 0}} {
		data, err := store.ReadAll(ctxT(t), st, optionsetDir+f.file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		for _, line := range lines {
			if line == "" {
				continue
			}
			v := strings.Split(line, ",")
			if len(v) != metadataColumns[f.file] || strings.ToLower(v[f.entity]) != "account" || strings.ContainsAny(v[f.field], `"`) {
				t.Errorf("%s: %q splits into %q: entity or column unreadable", f.file, line, v)
			}
		}
	}
}

// TestPublishDroppedTable: the published files (<table>/*.csv) and the
// table manifests of a table dropped by a run that Maintain never followed,
// or dropped right after Open, are removed, so a consumer listing
// <table>/*.csv or Microsoft.Athena.TrickleFeedService/ finds no table the
// link no longer has; a foreign folder is left alone (#9 §2).
func TestPublishDroppedTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// crash leaves the dropped table's derived files in place, as a
		// run killed between the Drop commit and its flush does.
		crash bool
	}{{"dropped after open", false}, {"dropped, then killed before flushing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			c := newClock()
			l := openLake(t, st, c)
			mustCommit(t, l, Tx{Tables: []TableTx{
				{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", t0), account(2, 2, "b", t0.AddDate(-1, 0, 0))}, Phase: Completed},
				{Name: "contact", Define: define(contactSchema(), TableOptions{}), Changes: []source.Change{contact(1, 1, "c")}, Phase: Completed},
			}})
			if err := l.Maintain(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := store.Put(ctxT(t), st, "other/2024.csv", []byte("not lakelink's\n")); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			objs, err := st.List(ctxT(t), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if strings.HasPrefix(o.Name, "account/") || strings.HasPrefix(o.Name, trickleDir+"account-") {
					before[o.Name], _ = store.ReadAll(ctxT(t), st, o.Name)
				}
			}
			if len(before) < 4 {
				t.Fatalf("account's derived files before the drop: %v", slices.Sorted(maps.Keys(before)))
			}
			l = openLake(t, st, c)
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Drop: true}}})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.crash {
				for name, data := range before {
					if err := store.Put(ctxT(t), st, name, data); err != nil {
						t.Fatal(err)
					}
				}
				l = openLake(t, st, c)
				if err := l.Maintain(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			objs, err = st.List(ctxT(t), "")
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			foreign, contactLive := false, false
			for _, o := range objs {
				switch {
				case strings.HasPrefix(o.Name, "account/") && !strings.HasPrefix(o.Name, "account/Snapshot/"),
					strings.HasPrefix(o.Name, trickleDir+"account-"):
					left = append(left, o.Name)
				case o.Name == "other/2024.csv":
					foreign = true
				case o.Name == "contact/1.csv":
					contactLive = true
				}
			}
			if len(left) > 0 || !foreign || !contactLive {
				t.Errorf("after the drop: account's files left %v, foreign file kept %v, contact published %v", left, foreign, contactLive)
			}
			m, err := store.ReadAll(ctxT(t), st, modelName)
			if err != nil {
				t.Fatal(err)
			}
			var model struct{ Entities []struct{ Name string } }
			if err := json.Unmarshal(m, &model); err != nil {
				t.Fatal(err)
			}
			if len(model.Entities) != 1 || model.Entities[0].Name != "contact" {
				t.Errorf("model.json entities after the drop: %+v", model.Entities)
			}
		})
	}
}
