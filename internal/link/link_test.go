package link

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/source"
)

func TestProfileToOptions(t *testing.T) {
	p, err := config.Parse("link.yaml", []byte(`name: x
source: {type: dataverse, url: "http://127.0.0.1:1"}
lake: {path: l}
tables:
  - name: contact
  - name: opportunity
    partition: month
snapshots: {keep: 0}
incremental_folders: {enabled: true, interval: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := LakeOptions(p, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if o.Link != "x" || o.Format == nil {
		t.Errorf("options %+v: want link x and the csv format", o)
	}
	specs := Specs(p)
	want := []lake.TableOptions{{AppendOnly: true, Granularity: lake.Year}, {AppendOnly: true, Granularity: lake.Month}}
	for i, s := range specs {
		if s.Options != want[i] {
			t.Errorf("%s: options %+v, want %+v (incremental folders force append-only)", s.Name, s.Options, want[i])
		}
	}
}

// TestFormatKey: a profile's format key opens the format registered under
// it (csv when absent); an unknown one fails, naming the registered ones.
func TestFormatKey(t *testing.T) {
	const base = `name: x
source: {type: dataverse, url: "http://127.0.0.1:1"}
lake: {path: l}
tables: [{name: contact}]
`
	for _, tt := range []struct {
		name, yaml, err string
	}{
		{"default", base, ""},
		{"csv", base + "format: csv\n", ""},
		{"unknown", base + "format: parquet\n", `link.yaml: format "parquet" is not a lake format this lakelink writes; use one of: `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := config.Parse("link.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			f, err := OpenFormat(p)
			switch {
			case tt.err == "" && (err != nil || f == nil):
				t.Fatalf("OpenFormat: %v, %v", f, err)
			case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err) || !strings.Contains(err.Error(), "csv")):
				t.Fatalf("OpenFormat: %v, want an error starting %q that names csv", err, tt.err)
			}
		})
	}
}

// TestConnectorsRegistered: the profile's source types open through the
// registry, with the optional interfaces docs/architecture.md lists.
func TestConnectorsRegistered(t *testing.T) {
	tests := []struct {
		typ               string
		lifecycle, health bool
	}{
		{"dataverse", false, false},
		{"postgres", true, true},
	}
	for _, tt := range tests {
		if got := source.Implements[source.Lifecycle](tt.typ); got != tt.lifecycle {
			t.Errorf("%s: Implements[Lifecycle] = %v, want %v", tt.typ, got, tt.lifecycle)
		}
		if got := source.Implements[source.HealthReporter](tt.typ); got != tt.health {
			t.Errorf("%s: Implements[HealthReporter] = %v, want %v", tt.typ, got, tt.health)
		}
	}
}
