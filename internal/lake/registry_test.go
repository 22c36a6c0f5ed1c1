package lake

import (
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/config"
)

// TestOpenCSVFormat: the csv format is registered, the default, and takes
// its options from the profile's snapshots and incremental_folders keys
// (keep: 0 keeps no snapshot, not the default five).
func TestOpenCSVFormat(t *testing.T) {
	if !slices.Contains(FormatNames(), DefaultFormat) {
		t.Fatalf("formats %v: %s is not registered", FormatNames(), DefaultFormat)
	}
	p, err := config.Parse("link.yaml", []byte(`name: x
source: {type: dataverse, url: "http://127.0.0.1:1"}
lake: {path: l}
tables: [{name: contact}]
snapshots: {keep: 0, interval: 2h}
incremental_folders: {enabled: true, interval: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		p    *config.Link
		want Options
	}{
		{"profile", p, Options{SnapshotInterval: 2 * time.Hour, SnapshotsToKeep: 0, Incremental: Incremental{Enabled: true, Interval: 5 * time.Minute}}},
		{"no profile", nil, Options{SnapshotInterval: time.Hour, SnapshotsToKeep: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OpenFormat("", FormatParams{Profile: tt.p})
			if err != nil {
				t.Fatal(err)
			}
			o := f.(*csvFormat).opts
			if o.SnapshotInterval != tt.want.SnapshotInterval || o.SnapshotsToKeep != tt.want.SnapshotsToKeep || o.Incremental != tt.want.Incremental {
				t.Errorf("options %+v, want snapshots every %s, %d kept, incremental %+v", o, tt.want.SnapshotInterval, tt.want.SnapshotsToKeep, tt.want.Incremental)
			}
		})
	}
}
