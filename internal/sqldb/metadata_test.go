package sqldb

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// opportunity is a Dataverse-like table with a local choice (salesstage), a
// global choice (budgetstatus), state and status codes and a lookup.
func opportunity(l *testLake) *lake.TableState {
	src := &schema.Table{
		Name: "opportunity",
		Key:  []string{"opportunityid"},
		Columns: []schema.Column{
			{Name: "opportunityid", Type: schema.Guid},
			{Name: "name", Type: schema.String},
			{Name: "salesstage", Type: schema.Int64, SourceType: "Picklist"},
			{Name: "budgetstatus", Type: schema.Int64, SourceType: "Picklist"},
			{Name: "statecode", Type: schema.Int64, SourceType: "State"},
			{Name: "statuscode", Type: schema.Int64, SourceType: "Status"},
			{Name: "parentaccountid", Type: schema.Guid, SourceType: "Lookup", Targets: []string{"account", "contact"}},
		},
		OptionSets: []schema.OptionSet{
			{Column: "salesstage", Options: []schema.Option{
				{Value: 0, Label: "Qualify", Language: 1033},
				{Value: 1, Label: "Develop", Language: 1033},
				{Value: 1, Label: "Entwickeln", Language: 1031, UserLocalized: true},
			}},
			{Column: "budgetstatus", Global: "budgetstatus", Options: []schema.Option{
				{Value: 2, Label: "Can Buy", Language: 1033},
			}},
		},
		States:   []schema.Option{{Value: 0, Label: "Open", Language: 1033}, {Value: 1, Label: "Won", Language: 1033}},
		Statuses: []schema.StatusOption{{State: 0, Option: schema.Option{Value: 1, Label: "In Progress", Language: 1033}}},
	}
	var cols []lake.Column
	for _, c := range src.Columns {
		cols = append(cols, lake.Column{Name: c.Name, Type: c.Type})
	}
	tab := &lake.TableState{Name: "opportunity", Phase: lake.Completed, Source: src, Columns: layout(cols...)}
	line := func(n int, name string, stage int) string {
		return fmt.Sprintf(`%s,"4/14/2026 8:21:50 PM","4/14/2026 8:21:50 PM",%s,"%s",%d,2,0,1,%s,1,,,`+"\n", id(n), id(n), name, stage, id(100))
	}
	tab.Files = []lake.File{l.write("opportunity/2020_1_1.csv", line(1, "Big deal", 1)+line(2, "Small deal", 0))}
	return tab
}

func TestMetadataJoin(t *testing.T) {
	l := newTestLake(t)
	acc := nameTable("account")
	acc.Source.Key = []string{"accountid"}
	l.commit(opportunity(l), acc)
	db := l.open()
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"the demo query", `SELECT o.name, m.LocalizedLabel FROM opportunity o JOIN OptionsetMetadata m
			ON m.EntityName='opportunity' AND m.OptionSetName='salesstage' AND m.Option=o.salesstage AND m.LocalizedLabelLanguageCode=1033
			ORDER BY o.name`, []string{"Big deal|Develop", "Small deal|Qualify"}},
		{"local options only", `SELECT * FROM OptionsetMetadata ORDER BY "Option", LocalizedLabelLanguageCode`, []string{
			"opportunity|salesstage|0|false|1033|Qualify",
			"opportunity|salesstage|1|true|1031|Entwickeln",
			"opportunity|salesstage|1|false|1033|Develop",
		}},
		{"global options", `SELECT * FROM GlobalOptionsetMetadata`, []string{"budgetstatus|2|false|1033|Can Buy|budgetstatus|opportunity|NULL"}},
		{"global join", `SELECT o.name, g.LocalizedLabel FROM opportunity o JOIN GlobalOptionsetMetadata g
			ON g.EntityName='opportunity' AND g.OptionSetName='budgetstatus' AND g.Option=o.budgetstatus ORDER BY o.name`,
			[]string{"Big deal|Can Buy", "Small deal|Can Buy"}},
		{"state", `SELECT * FROM StateMetadata ORDER BY State`, []string{"opportunity|0|false|1033|Open", "opportunity|1|false|1033|Won"}},
		{"status join", `SELECT o.name, s.LocalizedLabel FROM opportunity o JOIN StatusMetadata s
			ON s.EntityName='opportunity' AND s.State=o.statecode AND s.Status=o.statuscode ORDER BY o.name`,
			[]string{"Big deal|In Progress", "Small deal|In Progress"}},
		{"targets", `SELECT * FROM TargetMetadata ORDER BY ReferencedEntity`, []string{
			"opportunity|parentaccountid|account|accountid",
			"opportunity|parentaccountid|contact|contactid",
		}},
		{"column types", `SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
			WHERE table_name = 'StatusMetadata' ORDER BY ordinal_position`, []string{
			"StatusMetadata.EntityName VARCHAR", "StatusMetadata.State INTEGER", "StatusMetadata.Status INTEGER",
			"StatusMetadata.IsUserLocalizedLabel BOOLEAN", "StatusMetadata.LocalizedLabelLanguageCode INTEGER",
			"StatusMetadata.LocalizedLabel VARCHAR",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := query(t, db, tt.query); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	// A schema change replaces the table's rows; dropping the table removes them.
	opp := opportunity(l)
	opp.Source.OptionSets[0].Options = opp.Source.OptionSets[0].Options[:1]
	l.commit(opp)
	if got := query(t, db, `SELECT count(*) FROM OptionsetMetadata`); !slices.Equal(got, []string{"1"}) {
		t.Errorf("after a schema change: got %q rows, want 1", got)
	}
	l.drop("opportunity")
	for _, m := range metaTables {
		if got := query(t, db, `SELECT count(*) FROM `+m.name); !slices.Equal(got, []string{"0"}) {
			t.Errorf("%s after the table was dropped: got %q rows, want 0", m.name, got)
		}
	}
}

func TestCatalog(t *testing.T) {
	l := newTestLake(t)
	l.commit(nameTable("account"), nameTable("contact"))
	db := l.open()
	got := query(t, db, `SELECT t.name, t.location, t.max_column_id_used, s.name, s.type_desc, f.name, f.format_type, f.field_terminator, f.string_delimiter, f.first_row
		FROM sys.external_tables t
		JOIN sys.external_data_sources s ON s.data_source_id = t.data_source_id
		JOIN sys.external_file_formats f ON f.file_format_id = t.file_format_id
		ORDER BY t.name`)
	want := []string{
		"GlobalOptionsetMetadata|OptionsetMetadata/GlobalOptionsetMetadata.csv|8|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"OptionsetMetadata|OptionsetMetadata/OptionsetMetadata.csv|6|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"StateMetadata|OptionsetMetadata/StateMetadata.csv|5|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"StatusMetadata|OptionsetMetadata/StatusMetadata.csv|6|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"TargetMetadata|OptionsetMetadata/TargetMetadata.csv|4|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"account|account/*.csv|8|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"account_partitioned|account/Snapshot/*.csv|8|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"contact|contact/*.csv|8|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
		"contact_partitioned|contact/Snapshot/*.csv|8|test|NONE|SynapseLinkCsv|DELIMITEDTEXT|,|\"|1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ids := query(t, db, `SELECT name, object_id FROM sys.external_tables WHERE name LIKE 'account%' ORDER BY name`)
	if got := query(t, db, `SELECT location FROM sys.external_data_sources`); !slices.Equal(got, []string{l.st.Location("")}) {
		t.Errorf("data source location: got %q, want the lake root %q", got, l.st.Location(""))
	}

	// Object ids survive refreshes; a dropped table leaves the catalog.
	l.drop("contact")
	if got := query(t, db, `SELECT name, object_id FROM sys.external_tables WHERE name LIKE 'account%' ORDER BY name`); !slices.Equal(got, ids) {
		t.Errorf("object ids changed across a refresh: %q, then %q", ids, got)
	}
	if got := query(t, db, `SELECT count(*) FROM sys.external_tables WHERE name LIKE 'contact%'`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("dropped table still listed: %q", got)
	}
	if _, err := db.Query(t.Context(), `SELECT * FROM contact`); err == nil {
		t.Error("the view of a dropped table is still there")
	}
}
