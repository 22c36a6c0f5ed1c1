package sqldb

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

// FuzzTypedRoundTrip writes one row of every value kind through the lake
// writer (package lake's CSV encoder and commit) and reads it back through
// the lake database's view: the read_csv options and every conversion the
// view applies (decimal, double, date-time, boolean, text) must return what
// was written. Change files and compacted partitions go through the same
// options, so one path covers both.
func FuzzTypedRoundTrip(f *testing.F) {
	f.Add("line one\r\nline two", int64(9999999999999999), uint64(9999999999), 1.5, int64(0), true)
	f.Add("", int64(-1), uint64(1), math.Inf(1), int64(-62135596800000000), false)
	f.Add(`"`, int64(0), uint64(0), math.NaN(), int64(253402300799999999), true)
	f.Add("NULL", int64(math.MaxInt64), uint64(math.MaxUint64), -math.MaxFloat64, int64(1), false)
	f.Add("1e400", int64(math.MinInt64), uint64(5), math.SmallestNonzeroFloat64, int64(-1), true)
	ctx := context.Background()
	st, err := local.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	lk, err := lake.Open(ctx, st, lake.Options{Link: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	defer lk.Close()
	tab := &schema.Table{
		Name: "typed",
		Key:  []string{"typedid"},
		Columns: []schema.Column{
			{Name: "typedid", Type: schema.Guid},
			{Name: "name", Type: schema.String},
			{Name: "amount", Type: schema.Decimal, Precision: 38, Scale: 10},
			{Name: "score", Type: schema.Double},
			{Name: "happened", Type: schema.DateTime},
			{Name: "flag", Type: schema.Boolean},
		},
	}
	cols := []string{"typedid", "name", "amount", "score", "happened", "flag"}
	defined := false
	db, err := Open(ctx, st, func(ctx context.Context) (*lake.State, error) { return lake.ReadState(ctx, st) })
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	lo := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
	version := int64(0)
	f.Fuzz(func(t *testing.T, name string, whole int64, frac uint64, score float64, at int64, flag bool) {
		if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
			return // the lake holds UTF-8 text without NUL
		}
		// DECIMAL(38,10): up to 28 integer digits (an int64 has 19) and 10
		// fractional ones.
		amount := fmt.Sprintf("%d.%010d", whole, frac%1e10)
		if whole == 0 && frac%1e10 != 0 && frac%2 == 1 {
			amount = "-" + amount
		}
		if at < lo || at > hi {
			at = lo + (at%(hi-lo)+(hi-lo))%(hi-lo)
		}
		when := time.UnixMicro(at).UTC()
		version++
		tx := lake.TableTx{Name: "typed", Phase: lake.Completed, Changes: []source.Change{{
			Table: "typed", ID: id(1), Version: version, Columns: cols,
			Values: []any{id(1), name, amount, score, when, flag},
		}}}
		if !defined {
			tx.Define = &lake.Definition{Source: tab, Options: lake.TableOptions{Granularity: lake.Year}}
			defined = true
		}
		if _, err := lk.Commit(ctx, lake.Tx{Tables: []lake.TableTx{tx}}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		// Folding the change files now and then keeps each run's cost flat,
		// and reads the value from a compacted partition.
		if version%16 == 0 {
			if err := lk.Settle(ctx); err != nil {
				t.Fatalf("settle: %v", err)
			}
		}
		rows, err := db.Query(ctx, `SELECT name, CAST(amount AS VARCHAR), score, epoch_us(happened), flag FROM typed`)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		defer rows.Close()
		if !rows.Next() {
			t.Fatalf("no row: %v", rows.Err())
		}
		var gotName, gotAmount string
		var gotScore float64
		var gotAt int64
		var gotFlag bool
		if err := rows.Scan(&gotName, &gotAmount, &gotScore, &gotAt, &gotFlag); err != nil {
			t.Fatal(err)
		}
		want, _ := new(big.Rat).SetString(amount)
		got, ok := new(big.Rat).SetString(gotAmount)
		switch {
		case gotName != name:
			t.Errorf("name: wrote %q, read %q", name, gotName)
		case !ok || got.Cmp(want) != 0:
			t.Errorf("amount: wrote %s, read %s", amount, gotAmount)
		case gotScore != score && !(math.IsNaN(score) && math.IsNaN(gotScore)):
			t.Errorf("score: wrote %v, read %v", score, gotScore)
		case gotAt != at:
			t.Errorf("at: wrote %s, read %s", when, time.UnixMicro(gotAt).UTC())
		case gotFlag != flag:
			t.Errorf("flag: wrote %v, read %v", flag, gotFlag)
		}
		if rows.Next() {
			t.Error("more than one row for one Id")
		}
	})
}
