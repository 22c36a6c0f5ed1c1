package schema

import (
	"maps"
	"testing"
)

// TestRenames is issue #15 case 5's matching: two descriptions of one
// table are matched by column id, so a rename the source never reported
// (made while lakelink was stopped) is found, a drop and an add under the
// old name is not taken for one, and descriptions without ids fall back
// to the renames the source reported.
func TestRenames(t *testing.T) {
	desc := func(table string, renamed map[string]string, cols ...any) *Table {
		d := &Table{Name: "public.t", SourceID: table, Renamed: renamed}
		for i := 0; i < len(cols); i += 2 {
			d.Columns = append(d.Columns, Column{Name: cols[i].(string), SourceID: cols[i+1].(int)})
		}
		return d
	}
	prev := desc("16384", nil, "id", 1, "c1", 2, "c2", 3)
	tests := []struct {
		name string
		prev *Table
		cur  *Table
		want map[string]string
	}{
		{"unchanged", prev, desc("16384", nil, "id", 1, "c1", 2, "c2", 3), nil},
		{"one rename", prev, desc("16384", nil, "id", 1, "c1r", 2, "c2", 3), map[string]string{"c1": "c1r"}},
		{"rename of the last column", prev, desc("16384", nil, "id", 1, "c1", 2, "c2r", 3), map[string]string{"c2": "c2r"}},
		{"swap", prev, desc("16384", nil, "id", 1, "c2", 2, "c1", 3), map[string]string{"c1": "c2", "c2": "c1"}},
		{"rename, then a new column under the old name", prev, desc("16384", nil, "id", 1, "c1r", 2, "c2", 3, "c1", 4), map[string]string{"c1": "c1r"}},
		{"drop and add under the same name", prev, desc("16384", nil, "id", 1, "c2", 3, "c1", 4), nil},
		{"drop and add of the last column", prev, desc("16384", nil, "id", 1, "c1", 2, "c3", 4), nil},
		{"the source's guess loses to the ids", prev, desc("16384", map[string]string{"c2": "c3"}, "id", 1, "c1", 2, "c3", 4), nil},
		{"a column without an id keeps the source's rename", prev, desc("16384", map[string]string{"c2": "c2r"}, "id", 1, "c1", 2, "c2r", 0), map[string]string{"c2": "c2r"}},
		{"the table was created again", prev, desc("16999", nil, "id", 1, "x", 2, "y", 3), nil},
		{"an old description without ids", desc("", nil, "id", 0, "c1", 0, "c2", 0), desc("16384", map[string]string{"c1": "c1r"}, "id", 1, "c1r", 2, "c2", 3), map[string]string{"c1": "c1r"}},
		{"no earlier description", nil, desc("16384", nil, "id", 1), nil},
	}
	for _, tt := range tests {
		if got := Renames(tt.prev, tt.cur); !maps.Equal(got, tt.want) {
			t.Errorf("%s: Renames = %v, want %v", tt.name, got, tt.want)
		}
	}
}
