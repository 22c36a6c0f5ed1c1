package link

import (
	"log/slog"
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
	o := LakeOptions(p, slog.Default())
	if o.SnapshotsToKeep >= 0 {
		t.Errorf("keep: 0 became SnapshotsToKeep %d, which the lake reads as its default", o.SnapshotsToKeep)
	}
	if !o.Incremental.Enabled || o.Incremental.Interval.Minutes() != 5 {
		t.Errorf("incremental %+v", o.Incremental)
	}
	specs := Specs(p)
	want := []lake.TableOptions{{AppendOnly: true, Granularity: lake.Year}, {AppendOnly: true, Granularity: lake.Month}}
	for i, s := range specs {
		if s.Options != want[i] {
			t.Errorf("%s: options %+v, want %+v (incremental folders force append-only)", s.Name, s.Options, want[i])
		}
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
