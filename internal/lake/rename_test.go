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
		got, err := evolveLayout(cols, renamed(tt.renames))
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
