package sqldb

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

func nameTable(name string) *lake.TableState {
	return &lake.TableState{
		Name:    name,
		Phase:   lake.Completed,
		Columns: layout(lake.Column{Name: "name", Type: schema.String}),
		Source:  &schema.Table{Name: name, Key: []string{name + "id"}, Columns: []schema.Column{{Name: "name", Type: schema.String}}},
	}
}

func TestMergeOnRead(t *testing.T) {
	tests := []struct {
		name    string
		files   []string // partition files
		changes []string // change files, oldest first
		want    []string // Id's number|name, sorted
	}{
		{
			name:  "no changes",
			files: []string{row(1, "a", 1, false) + row(2, "b", 1, false)},
			want:  []string{"1|a", "2|b"},
		},
		{
			name:    "update",
			files:   []string{row(1, "a", 1, false) + row(2, "b", 1, false)},
			changes: []string{row(2, "b2", 2, false)},
			want:    []string{"1|a", "2|b2"},
		},
		{
			name:    "insert",
			files:   []string{row(1, "a", 1, false)},
			changes: []string{row(3, "c", 5, false)},
			want:    []string{"1|a", "3|c"},
		},
		{
			name:    "delete",
			files:   []string{row(1, "a", 1, false) + row(2, "b", 1, false)},
			changes: []string{row(1, "", 2, true)},
			want:    []string{"2|b"},
		},
		{
			name:    "delete then re-create",
			files:   []string{row(1, "a", 1, false)},
			changes: []string{row(1, "", 2, true), row(1, "again", 3, false)},
			want:    []string{"1|again"},
		},
		{
			name:    "create then delete in changes only",
			files:   nil,
			changes: []string{row(4, "d", 1, false), row(4, "", 2, true)},
			want:    nil,
		},
		{
			name:    "out-of-order versions across change files",
			files:   []string{row(1, "a", 1, false)},
			changes: []string{row(1, "v5", 5, false), row(1, "v3", 3, false)},
			want:    []string{"1|v5"},
		},
		{
			name:    "out-of-order versions in one file",
			files:   []string{row(1, "a", 1, false)},
			changes: []string{row(1, "v5", 5, false) + row(1, "v3", 3, false) + row(1, "", 4, true)},
			want:    []string{"1|v5"},
		},
		{
			name:    "stale change older than the partition row",
			files:   []string{row(1, "new", 7, false)},
			changes: []string{row(1, "old", 6, false), row(1, "", 2, true)},
			want:    []string{"1|new"},
		},
		{
			name:    "equal version: later file wins",
			files:   []string{row(1, "base", 3, false)},
			changes: []string{row(1, "first", 4, false), row(1, "second", 4, false)},
			want:    []string{"1|second"},
		},
		{
			name:    "equal version with the partition row: change wins",
			files:   []string{row(1, "base", 3, false)},
			changes: []string{row(1, "change", 3, false)},
			want:    []string{"1|change"},
		},
		{
			name:    "several partition files",
			files:   []string{row(1, "a", 1, false), row(2, "b", 1, false), row(3, "c", 1, false)},
			changes: []string{row(2, "", 2, true) + row(3, "c2", 2, false)},
			want:    []string{"1|a", "3|c2"},
		},
	}
	modes(t, func(t *testing.T, open func(*testLake) *DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				l := newTestLake(t)
				tab := nameTable("account")
				for i, f := range tt.files {
					tab.Files = append(tab.Files, l.write(fmt.Sprintf("account/%d_1_%d.csv", 2020+i, i), f))
				}
				for i, f := range tt.changes {
					tab.Changes = append(tab.Changes, l.write(fmt.Sprintf("_lakelink/changes/account/%04d.csv", i), f))
				}
				l.commit(tab)
				db := open(l)
				got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 1), name FROM account ORDER BY Id`)
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	})
}

func TestAppendOnly(t *testing.T) { modes(t, testAppendOnly) }

func testAppendOnly(t *testing.T, open func(*testLake) *DB) {
	l := newTestLake(t)
	tab := nameTable("activityparty")
	tab.Options.AppendOnly = true
	tab.Files = []lake.File{
		l.write("activityparty/2020_1_1.csv", row(1, "a", 1, false)+row(1, "a2", 2, false)),
		l.write("activityparty/2021_1_1.csv", row(1, "", 3, true)+row(2, "b", 1, false)),
	}
	l.commit(tab)
	db := open(l)
	got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 1), name, versionnumber, IsDelete FROM activityparty ORDER BY Id, versionnumber`)
	want := []string{"1|a|1|NULL", "1|a2|2|NULL", "1|NULL|3|true", "2|b|1|NULL"}
	if !slices.Equal(got, want) {
		t.Errorf("all change rows: got %q, want %q", got, want)
	}
	// The dedupe query docs/sql.md documents.
	got = query(t, db, `SELECT right(CAST(Id AS VARCHAR), 1), name FROM activityparty
		QUALIFY row_number() OVER (PARTITION BY Id ORDER BY versionnumber DESC, SinkModifiedOn DESC) = 1
		AND NOT coalesce(IsDelete, false) ORDER BY Id`)
	want = []string{"2|b"}
	if !slices.Equal(got, want) {
		t.Errorf("dedupe: got %q, want %q", got, want)
	}
}

func TestSnapshotView(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("contact")
	tab.Files = []lake.File{l.write("contact/2020_1_1.csv", row(1, "live", 2, false))}
	l.commit(tab)
	db := l.open()
	if got := query(t, db, `SELECT count(*) FROM contact_partitioned`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("before any snapshot: got %q, want no rows", got)
	}
	tab2 := *tab
	tab2.Snapshots = []lake.Snapshot{
		{Files: []lake.File{l.write("contact/Snapshot/2020_1700000000.csv", row(1, "old", 1, false))}},
		{Files: []lake.File{l.write("contact/Snapshot/2020_1700003600.csv", row(1, "snap", 2, false)+row(2, "x", 1, false))}},
	}
	l.commit(&tab2)
	got := query(t, db, `SELECT name FROM contact_partitioned ORDER BY Id`)
	if want := []string{"snap", "x"}; !slices.Equal(got, want) {
		t.Errorf("newest snapshot: got %q, want %q", got, want)
	}
	got = query(t, db, `SELECT typeof(Id), typeof(SinkCreatedOn), typeof(name), typeof(IsDelete) FROM contact_partitioned LIMIT 1`)
	if want := []string{"UUID|TIMESTAMP|VARCHAR|BOOLEAN"}; !slices.Equal(got, want) {
		t.Errorf("types: got %q, want %q", got, want)
	}
}

func TestEmptyTableIsTyped(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("lead")
	tab.Phase = lake.InProgress
	l.commit(tab)
	db := l.open()
	for _, view := range []string{"lead", "lead_partitioned"} {
		got := query(t, db, `SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, view)
		want := []string{"Id UUID", "SinkCreatedOn TIMESTAMP", "SinkModifiedOn TIMESTAMP", "name VARCHAR",
			"versionnumber BIGINT", "createdon TIMESTAMP", "modifiedon TIMESTAMP", "IsDelete BOOLEAN"}
		if !slices.Equal(got, want) {
			t.Errorf("%s columns: got %q, want %q", view, got, want)
		}
		if got := query(t, db, `SELECT count(*) FROM `+view); !slices.Equal(got, []string{"0"}) {
			t.Errorf("%s: got %q, want 0 rows", view, got)
		}
	}
}

func TestViewsDoNotScanWhenCreated(t *testing.T) {
	l := newTestLake(t)
	tab := nameTable("account")
	// DuckDB binds a view when it is created (the named files must exist)
	// but reads rows only when queried: a bad row surfaces then.
	bad := row(1, "a", 1, false) + "not-a-guid,,,,1,,,\n"
	tab.Files = []lake.File{l.write("account/2020_1_1.csv", bad)}
	tab.Changes = []lake.File{l.write("_lakelink/changes/account/1.csv", bad)}
	l.commit(tab)
	db := l.open()
	rows, err := db.Query(t.Context(), `SELECT * FROM account`)
	if err == nil {
		_, err = collect(rows)
		rows.Close()
	}
	if err == nil {
		t.Fatal("query over a malformed file succeeded")
	}
}

// TestColumnNamedFilename: read_csv's own file-name column must not clash
// with a source column called filename.
func TestColumnNamedFilename(t *testing.T) {
	l := newTestLake(t)
	tab := &lake.TableState{Name: "doc", Phase: lake.Completed, Columns: layout(lake.Column{Name: "filename", Type: schema.String})}
	tab.Files = []lake.File{l.write("doc/2020_1_1.csv", row(1, "a.txt", 1, false))}
	tab.Changes = []lake.File{l.write("_lakelink/changes/doc/1.csv", row(1, "b.txt", 2, false)+row(2, "c.txt", 1, false))}
	l.commit(tab)
	db := l.open()
	if got, want := query(t, db, `SELECT filename FROM doc ORDER BY Id`), []string{"b.txt", "c.txt"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestClashingColumnNames: SQL names ignore case, so a Postgres table's
// "id" clashes with lakelink's Id. lakelink's columns keep their names, the
// source's get a suffix, and merge-on-read still uses lakelink's columns.
func TestClashingColumnNames(t *testing.T) {
	l := newTestLake(t)
	tab := &lake.TableState{Name: "pgtable", Phase: lake.Completed, Columns: layout(
		lake.Column{Name: "id", Type: schema.Int64},
		lake.Column{Name: "VersionNumber", Type: schema.String},
		lake.Column{Name: "isdelete", Type: schema.String},
		lake.Column{Name: "id_2", Type: schema.String},
	)}
	line := func(n int, version int64, deleted string) string {
		return fmt.Sprintf(`%s,"4/14/2026 8:21:50 PM","4/14/2026 8:21:50 PM",%d,"v","no","x",%d,,,%s`+"\n", id(n), n, version, deleted)
	}
	tab.Files = []lake.File{l.write("pgtable/2020_1_1.csv", line(1, 1, "")+line(2, 1, ""))}
	tab.Changes = []lake.File{l.write("_lakelink/changes/pgtable/1.csv", line(1, 2, "True")+line(2, 2, ""))}
	l.commit(tab)
	db := l.open()
	got := query(t, db, `SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'pgtable'`)
	want := "Id,SinkCreatedOn,SinkModifiedOn,id_3,VersionNumber_2,isdelete_2,id_2,versionnumber,createdon,modifiedon,IsDelete"
	if len(got) != 1 || got[0] != want {
		t.Errorf("columns: got %q, want %q", got, want)
	}
	if got := query(t, db, `SELECT id_3, versionnumber, isdelete_2 FROM pgtable`); !slices.Equal(got, []string{"2|2|no"}) {
		t.Errorf("rows: got %q", got)
	}
}
