package config

import (
	"strings"
	"testing"
	"time"

	// lake.url is checked against the registered stores.
	_ "github.com/lakelink/lakelink/internal/store/local"
)

const example = `name: sales
source:
  type: dataverse
  url: http://127.0.0.1:8081
lake:
  path: ./lake/sales
tables:
  - name: contact
  - name: account
    append_only: true
  - name: opportunity
    partition: month
snapshots:
  interval: 1h
  keep: 5
incremental_folders:
  enabled: false
  interval: 15m
`

func TestParseExample(t *testing.T) {
	l, err := Parse("/p/link.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "sales" || l.Source.Type != "dataverse" || len(l.Tables) != 3 {
		t.Fatalf("parsed %+v", l)
	}
	if !l.Tables[1].AppendOnly || l.Tables[2].Partition != "month" || l.Tables[0].Partition != "year" {
		t.Fatalf("tables %+v", l.Tables)
	}
	if l.Snapshots.Interval.Duration != time.Hour || *l.Snapshots.Keep != 5 || l.IncrementalFolders.Interval.Duration != 15*time.Minute {
		t.Fatalf("options %+v %+v", l.Snapshots, l.IncrementalFolders)
	}
	if got := l.LakeLocation(); got != "/p/lake/sales" {
		t.Fatalf("LakeLocation = %s", got)
	}
	if l.Sync.Workers != DefaultWorkers {
		t.Fatalf("workers %d", l.Sync.Workers)
	}
}

func TestLakeURL(t *testing.T) {
	l, err := Parse("/p/link.yaml", []byte(strings.Replace(example, "  path: ./lake/sales\n", "  url: file:///srv/lake/sales\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.LakeLocation(); got != "file:///srv/lake/sales" {
		t.Fatalf("LakeLocation = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"bad partition", strings.Replace(example, "partition: month", "partition: weekly", 1),
			[]string{"link.yaml:12: tables[2].partition", `"weekly" is not a partition strategy`}},
		{"unknown key", strings.Replace(example, "append_only: true", "appendonly: true", 1),
			[]string{"link.yaml", "appendonly"}},
		{"bad type", strings.Replace(example, "type: dataverse", "type: oracle", 1),
			[]string{"link.yaml:3: source.type", `"oracle" is not a source type`}},
		{"no url", strings.Replace(example, "  url: http://127.0.0.1:8081\n", "", 1),
			[]string{"source.url: missing"}},
		{"duplicate table", strings.Replace(example, "name: account", "name: contact", 1),
			[]string{"link.yaml:9: tables[1].name", "listed twice"}},
		{"keep out of range", strings.Replace(example, "keep: 5", "keep: 500", 1),
			[]string{"link.yaml:15: snapshots.keep", "0 to 100"}},
		{"bad duration", strings.Replace(example, "interval: 1h", "interval: soon", 1),
			[]string{"link.yaml:14: snapshots.interval", `"soon" is not a duration`}},
		{"no lake", strings.Replace(example, "  path: ./lake/sales\n", "", 1),
			[]string{"lake.path: missing"}},
		{"path and url", strings.Replace(example, "  path: ./lake/sales\n", "  path: ./lake/sales\n  url: file:///srv/lake\n", 1),
			[]string{"link.yaml:7: lake.url", "not both"}},
		{"url without scheme", strings.Replace(example, "  path: ./lake/sales\n", "  url: /srv/lake\n", 1),
			[]string{"link.yaml:6: lake.url", `"/srv/lake" is not a URL`, "lake.path"}},
		{"url of an unknown store", strings.Replace(example, "  path: ./lake/sales\n", "  url: gs://bucket/sales\n", 1),
			[]string{"link.yaml:6: lake.url", `no store for the scheme "gs"`, "opens: file"}},
		{"postgres without dsn", "name: shop\nsource:\n  type: postgres\nlake:\n  path: x\ntables:\n  - name: public.orders\n",
			[]string{"source.dsn: missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("link.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
