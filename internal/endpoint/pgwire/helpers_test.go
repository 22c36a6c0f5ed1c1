package pgwire

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/endpoint"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/store/local"
)

// testLake is a lake written by package lake with a contact table of every
// lake column type, and the endpoint serving it.
type testLake struct {
	t    testing.TB
	lk   *lake.Lake
	st   *local.Store
	db   *sqldb.DB
	addr string
}

// contactTable has every CDM type the lake has, and a choice column.
var contactTable = &schema.Table{
	Name: "contact",
	Key:  []string{"contactid"},
	Columns: []schema.Column{
		{Name: "contactid", Type: schema.Guid},
		{Name: "fullname", Type: schema.String},
		{Name: "credit", Type: schema.Decimal, Precision: 38, Scale: 4},
		{Name: "visits", Type: schema.Int64},
		{Name: "vip", Type: schema.Boolean},
		{Name: "score", Type: schema.Double},
		{Name: "lastcall", Type: schema.DateTimeOffset},
		{Name: "birthday", Type: schema.DateTime},
		{Name: "prefs", Type: schema.JSON},
		{Name: "gendercode", Type: schema.Int64, SourceType: "Picklist"},
	},
	OptionSets: []schema.OptionSet{{Column: "gendercode", Options: []schema.Option{
		{Value: 1, Label: "Male", Language: 1033}, {Value: 2, Label: "Female", Language: 1033},
	}}},
}

var contactCols = []string{"contactid", "fullname", "credit", "visits", "vip", "score", "lastcall", "birthday", "prefs", "gendercode"}

func id(n int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }

// contact is a change of contact n; nil values are NULL.
func contact(n int, version int64, vals ...any) source.Change {
	return source.Change{Table: "contact", ID: id(n), Version: version, Columns: contactCols, Values: append([]any{id(n)}, vals...)}
}

// newTestLake writes the lake with contacts 1 and 2 and serves it on a
// loopback port with limits (DefaultLimits when zero).
func newTestLake(t testing.TB, limits endpoint.Limits) *testLake {
	t.Helper()
	ctx := context.Background()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lake.Open(ctx, st, lake.Options{Link: "sales"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Close() })
	l := &testLake{t: t, lk: lk, st: st}
	at := time.Date(2026, 3, 1, 8, 30, 15, 123456000, time.UTC)
	l.commit(&lake.Definition{Source: contactTable, Options: lake.TableOptions{Granularity: lake.Year}},
		contact(1, 1, "Ada Lovelace", "12345678901234567890123456789012.3456", int64(36), true, 1.5, at, at.Add(-time.Hour), `{"a":1}`, int64(2)),
		contact(2, 1, "Charles Babbage", nil, nil, nil, nil, nil, nil, nil, nil),
	)
	db, err := sqldb.OpenWith(ctx, st, func(ctx context.Context) (*lake.State, error) { return lake.ReadState(ctx, st) }, sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l.db = db
	if limits == (endpoint.Limits{}) {
		limits = endpoint.DefaultLimits
	}
	l.addr = serve(t, endpoint.Config{DB: db, Name: "sales", Limits: limits})
	return l
}

// commit commits changes of contact (and its definition, when given).
func (l *testLake) commit(def *lake.Definition, changes ...source.Change) {
	l.t.Helper()
	tx := lake.TableTx{Name: "contact", Define: def, Changes: changes}
	if def != nil {
		tx.Phase = lake.Completed
	}
	if _, err := l.lk.Commit(context.Background(), lake.Tx{Tables: []lake.TableTx{tx}}); err != nil {
		l.t.Fatal(err)
	}
}

// url is a connection string for the endpoint.
func (l *testLake) url(extra string) string {
	host, port, _ := net.SplitHostPort(l.addr)
	return fmt.Sprintf("postgres://anyone@%s:%s/sales?sslmode=disable%s", host, port, extra)
}

func (l *testLake) connect(extra string) *pgx.Conn {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, l.url(extra))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// zeroLimits asks newTestLake for DefaultLimits.
var zeroLimits endpoint.Limits

func endpointLimits(timeout time.Duration, maxRows int64) endpoint.Limits {
	l := endpoint.DefaultLimits
	l.QueryTimeout, l.MaxRows = timeout, maxRows
	return l
}
