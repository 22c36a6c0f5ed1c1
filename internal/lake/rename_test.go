package lake

import (
	"errors"
	"slices"
	"testing"

	"github.com/lakelink/lakelink/internal/schema"
)

// TestEvolveLayoutRenames is issue #15's case 5 in the lake: a renamed
// column keeps its position under its new name; a rename onto a name the
// layout still has (a dropped column) is a *LayoutError; a swap works.
func TestEvolveLayoutRenames(t *testing.T) {
	base := accountSchema()
	cols, err := newLayout(base)
	if err != nil {
		t.Fatal(err)
	}
	names := func(cols []Column) []string {
		var out []string
		for _, c := range cols {
			if !c.Dropped {
				out = append(out, c.Name)
			}
		}
		return out
	}
	renamed := func(renames map[string]string) *schema.Table {
		t := *base
		t.Columns = slices.Clone(base.Columns)
		for i, c := range t.Columns {
			if to, ok := renames[c.Name]; ok {
				t.Columns[i].Name = to
			}
		}
		t.Renamed = renames
		return &t
	}
	tests := []struct {
		name    string
		renames map[string]string
		want    []string
		bad     bool
	}{
		{"one", map[string]string{"name": "title"}, []string{colID, colSinkCreatedOn, colSinkModified, "accountid", "title", "revenue", "statecode", "parentaccountid", colVersion, colCreatedOn, colModifiedOn, colIsDelete}, false},
		{"swap", map[string]string{"name": "revenue", "revenue": "name"}, []string{colID, colSinkCreatedOn, colSinkModified, "accountid", "revenue", "name", "statecode", "parentaccountid", colVersion, colCreatedOn, colModifiedOn, colIsDelete}, false},
		{"onto an existing name", map[string]string{"name": "statecode"}, nil, true},
	}
	for _, tt := range tests {
		got, err := evolveLayout(cols, base, renamed(tt.renames))
		var le *LayoutError
		if tt.bad {
			if !errors.As(err, &le) {
				t.Errorf("%s: %v, want a *LayoutError", tt.name, err)
			}
			continue
		}
		if err != nil || !slices.Equal(names(got), tt.want) || len(got) != len(cols) {
			t.Errorf("%s: layout %v (%v), want %v in place", tt.name, names(got), err, tt.want)
		}
	}
}

// TestEvolveLayoutRenamesByID: a rename the source did not report (made
// while lakelink was stopped) is followed when both descriptions carry
// column ids, and is a drop plus an add when the committed one has none
// (a lake written before ids were recorded).
func TestEvolveLayoutRenamesByID(t *testing.T) {
	withIDs := func(d *schema.Table) *schema.Table {
		c := *d
		c.SourceID = "16384"
		c.Columns = slices.Clone(d.Columns)
		for i := range c.Columns {
			c.Columns[i].SourceID = i + 1
		}
		return &c
	}
	base := withIDs(accountSchema())
	cols, err := newLayout(base)
	if err != nil {
		t.Fatal(err)
	}
	cur := withIDs(accountSchema())
	cur.Columns[1].Name = "title"
	layoutNames := func(cols []Column) (live, dropped []string) {
		for _, c := range cols {
			if c.Dropped {
				dropped = append(dropped, c.Name)
			} else {
				live = append(live, c.Name)
			}
		}
		return live, dropped
	}
	got, err := evolveLayout(cols, base, cur)
	live, dropped := layoutNames(got)
	if err != nil || len(got) != len(cols) || live[4] != "title" || len(dropped) != 0 {
		t.Errorf("rename by id: layout %v, dropped %v (%v), want title in place of name", live, dropped, err)
	}
	got, err = evolveLayout(cols, accountSchema(), cur)
	live, dropped = layoutNames(got)
	if err != nil || len(got) != len(cols)+1 || live[len(live)-1] != "title" || !slices.Equal(dropped, []string{"name"}) {
		t.Errorf("committed description without ids: layout %v, dropped %v (%v), want name dropped and title added", live, dropped, err)
	}
}
