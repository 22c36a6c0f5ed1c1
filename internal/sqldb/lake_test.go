package sqldb

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

// TestWithLakeWriter queries a lake that package lake wrote: the SQL layer
// must agree with the writer on layout, value formats, change files,
// compaction, snapshots and schema evolution.
func TestWithLakeWriter(t *testing.T) {
	ctx := t.Context()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 4, 14, 20, 21, 50, 0, time.UTC)
	lk, err := lake.Open(ctx, st, lake.Options{Link: "it", Now: func() time.Time { return now }, CompactRows: 1, CompactAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	account := &schema.Table{
		Name: "account",
		Key:  []string{"accountid"},
		Columns: []schema.Column{
			{Name: "accountid", Type: schema.Guid},
			{Name: "name", Type: schema.String},
			{Name: "revenue", Type: schema.Decimal, Precision: 38, Scale: 2},
			{Name: "industrycode", Type: schema.Int64, SourceType: "Picklist"},
			{Name: "createdon", Type: schema.DateTime},
		},
		PartitionColumn: "createdon",
		OptionSets: []schema.OptionSet{{Column: "industrycode", Options: []schema.Option{
			{Value: 1, Label: "Accounting", Language: 1033}, {Value: 2, Label: "Agriculture", Language: 1033},
		}}},
	}
	created := time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)
	cols := []string{"accountid", "name", "revenue", "industrycode", "createdon"}
	change := func(n int, version int64, name string, revenue string, industry int64) source.Change {
		return source.Change{Table: "account", ID: id(n), Version: version, Columns: cols, Values: []any{id(n), name, revenue, industry, created}}
	}
	commit := func(tx lake.Tx) {
		t.Helper()
		if _, err := lk.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	commit(lake.Tx{Tables: []lake.TableTx{{
		Name:   "account",
		Define: &lake.Definition{Source: account, Options: lake.TableOptions{Granularity: lake.Year}},
		Changes: []source.Change{
			change(1, 1, "Contoso, \"Ltd\"", "1000.50", 1),
			change(2, 1, "Fabrikam\nWest", "-0.01", 2),
			change(3, 1, "Northwind", "99999999999999999999999999999999999.99", 1),
		},
		Phase: lake.Completed,
	}}})
	db, err := OpenWith(ctx, st, func(ctx context.Context) (*lake.State, error) { return lake.ReadState(ctx, st) }, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const q = `SELECT right(CAST(a.Id AS VARCHAR), 1), a.name, a.revenue, m.LocalizedLabel, a.versionnumber, a.createdon, a.SinkModifiedOn
		FROM account a LEFT JOIN OptionsetMetadata m ON m.EntityName = 'account' AND m.OptionSetName = 'industrycode'
		AND m.Option = a.industrycode AND m.LocalizedLabelLanguageCode = 1033 ORDER BY a.Id`
	// Each step is checked as soon as it is committed (the views read the
	// CSV files) and once the Parquet cache holds the new files.
	check := func(step string, want ...string) {
		t.Helper()
		if got := query(t, db, q); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", step, got, want)
		}
		warm(t, db)
		if got := query(t, db, q); !slices.Equal(got, want) {
			t.Errorf("%s, cached:\n got %q\nwant %q", step, got, want)
		}
	}
	const at = "|2024-03-01T08:00:00Z|2026-04-14T20:21:50Z"
	check("initial copy",
		"1|Contoso, \"Ltd\"|1000.50|Accounting|1"+at,
		"2|Fabrikam\nWest|-0.01|Agriculture|1"+at,
		"3|Northwind|99999999999999999999999999999999999.99|Accounting|1"+at)

	// Merge-on-read: an update, a delete, an insert, and a stale
	// re-delivery that must not win.
	commit(lake.Tx{Tables: []lake.TableTx{{Name: "account", Changes: []source.Change{
		change(1, 2, "Contoso 2", "1.00", 2),
		{Table: "account", ID: id(2), Version: 2, Deleted: true},
		change(4, 1, "Litware", "4.00", 1),
	}}}})
	commit(lake.Tx{Tables: []lake.TableTx{{Name: "account", Changes: []source.Change{change(1, 1, "stale", "0", 1)}}}})
	want := []string{
		"1|Contoso 2|1.00|Agriculture|2" + at,
		"3|Northwind|99999999999999999999999999999999999.99|Accounting|1" + at,
		"4|Litware|4.00|Accounting|1" + at,
	}
	check("after changes", want...)

	// Compaction and the first snapshot change files, not results.
	if err := lk.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Maintain", want...)
	if got := query(t, db, `SELECT count(*) FROM account_partitioned`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("snapshot after Maintain: got %q rows, want 3", got)
	}

	// A column added at the source: older rows read it as NULL.
	evolved := *account
	evolved.Columns = append(slices.Clone(account.Columns), schema.Column{Name: "website", Type: schema.String})
	c5 := change(5, 1, "Adventure Works", "5.00", 2)
	c5.Columns, c5.Values = append(slices.Clip(cols), "website"), append(c5.Values, "https://example.com")
	commit(lake.Tx{Tables: []lake.TableTx{{Name: "account", Define: &lake.Definition{Source: &evolved, Options: lake.TableOptions{Granularity: lake.Year}},
		Changes: []source.Change{c5}}}})
	if got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 1), website FROM account ORDER BY Id`); !slices.Equal(got,
		[]string{"1|NULL", "3|NULL", "4|NULL", "5|https://example.com"}) {
		t.Errorf("after a schema change: got %q", got)
	}

	// An append-only table: every change is a row, a delete too.
	party := &schema.Table{Name: "activityparty", Key: []string{"activitypartyid"}, AppendOnly: true, Columns: []schema.Column{
		{Name: "activitypartyid", Type: schema.Guid}, {Name: "addressused", Type: schema.String},
	}}
	partyCols := []string{"activitypartyid", "addressused"}
	pc := func(n int, version int64, addr string) source.Change {
		return source.Change{Table: "activityparty", ID: id(n), Version: version, Columns: partyCols, Values: []any{id(n), addr}}
	}
	commit(lake.Tx{Tables: []lake.TableTx{{
		Name:    "activityparty",
		Define:  &lake.Definition{Source: party, Options: lake.TableOptions{AppendOnly: true, Granularity: lake.Year}},
		Changes: []source.Change{pc(1, 1, "a@example.com"), pc(1, 2, "b@example.com"), pc(2, 1, "c@example.com")},
		Phase:   lake.Completed,
	}}})
	commit(lake.Tx{Tables: []lake.TableTx{{Name: "activityparty", Changes: []source.Change{{Table: "activityparty", ID: id(2), Version: 2, Deleted: true}}}}})
	if got := query(t, db, `SELECT right(CAST(Id AS VARCHAR), 1), addressused, versionnumber, IsDelete FROM activityparty ORDER BY Id, versionnumber`); !slices.Equal(got, []string{
		"1|a@example.com|1|NULL", "1|b@example.com|2|NULL", "2|c@example.com|1|NULL", "2|NULL|2|true",
	}) {
		t.Errorf("append-only rows: got %q", got)
	}
}
