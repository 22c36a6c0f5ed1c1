package pgwire

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestPgxTypes reads every lake column type through pgx, in the extended
// protocol with binary results (pgx's default) and in the simple protocol
// (text): the Go types and values must be exact, NULLs NULL.
func TestPgxTypes(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	for _, mode := range []string{"", "&default_query_exec_mode=simple_protocol", "&default_query_exec_mode=exec"} {
		t.Run("mode"+mode, func(t *testing.T) {
			c := l.connect(mode)
			ctx := context.Background()
			var (
				cid      uuid.UUID
				name     string
				credit   pgtype.Numeric
				visits   int64
				vip      bool
				score    float64
				lastcall time.Time
				birthday time.Time
				prefs    map[string]any
				gender   int64
			)
			err := c.QueryRow(ctx, `SELECT Id, fullname, credit, visits, vip, score, lastcall, birthday, prefs, gendercode FROM contact WHERE Id = $1`, id(1)).
				Scan(&cid, &name, &credit, &visits, &vip, &score, &lastcall, &birthday, &prefs, &gender)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := new(big.Int).SetString("123456789012345678901234567890123456", 10)
			at := time.Date(2026, 3, 1, 8, 30, 15, 123456000, time.UTC)
			if cid.String() != id(1) || name != "Ada Lovelace" || credit.Int.Cmp(want) != 0 || credit.Exp != -4 || visits != 36 || !vip || score != 1.5 ||
				!lastcall.Equal(at) || !birthday.Equal(at.Add(-time.Hour)) || prefs["a"] != float64(1) || gender != 2 {
				t.Errorf("got %v %q %v %v %v %v %v %v %v %v", cid, name, credit, visits, vip, score, lastcall, birthday, prefs, gender)
			}
			// NULLs of every type.
			row := c.QueryRow(ctx, `SELECT credit, visits, vip, score, lastcall, birthday, prefs, gendercode FROM contact WHERE Id = $1`, id(2))
			var (
				n       pgtype.Numeric
				i, g    pgtype.Int8
				b       pgtype.Bool
				f       pgtype.Float8
				ts, ts2 pgtype.Timestamptz
				j       any
			)
			if err := row.Scan(&n, &i, &b, &f, &ts, &ts2, &j, &g); err != nil {
				t.Fatal(err)
			}
			if n.Valid || i.Valid || b.Valid || f.Valid || ts.Valid || ts2.Valid || j != nil || g.Valid {
				t.Errorf("NULLs: got %v %v %v %v %v %v %v %v", n, i, b, f, ts, ts2, j, g)
			}
		})
	}
}

// TestPgxDescribe checks the types a client sees: OIDs and numeric's
// precision and scale.
func TestPgxDescribe(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	c := l.connect("")
	sd, err := c.Prepare(context.Background(), "all", `SELECT Id, fullname, credit, visits, vip, score, lastcall, birthday, prefs FROM contact WHERE visits > $1`)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{pgtype.UUIDOID, pgtype.TextOID, pgtype.NumericOID, pgtype.Int8OID, pgtype.BoolOID, pgtype.Float8OID, pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.JSONOID}
	for i, f := range sd.Fields {
		if f.DataTypeOID != want[i] {
			t.Errorf("column %s: OID %d, want %d", f.Name, f.DataTypeOID, want[i])
		}
	}
	if mod := sd.Fields[2].TypeModifier; mod != (38<<16|4)+4 {
		t.Errorf("numeric typmod %d, want numeric(38,4)", mod)
	}
	if len(sd.ParamOIDs) != 1 || sd.ParamOIDs[0] != pgtype.Int8OID {
		t.Errorf("parameters %v, want [int8]", sd.ParamOIDs)
	}
	var n int
	if err := c.QueryRow(context.Background(), "all", 10).Scan(new(any), new(any), new(any), &n, new(any), new(any), new(any), new(any), new(any)); err != nil || n != 36 {
		t.Errorf("prepared statement: %v, %d", err, n)
	}
}

// TestPgxCancel cancels a long query with a cancel request (pgconn's
// CancelRequest, which pgx also sends when a query's context ends).
func TestPgxCancel(t *testing.T) {
	l := newTestLake(t, zeroLimits)
	c := l.connect("")
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := c.PgConn().CancelRequest(context.Background()); err != nil {
			t.Errorf("cancel request: %v", err)
		}
	}()
	start := time.Now()
	_, err := c.Exec(context.Background(), `SELECT count(*) FROM range(10000000000) a`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("got %v, want SQLSTATE 57014", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
	// The connection goes on.
	var one int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("after cancel: %v", err)
	}
	// A context that ends cancels the query the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(ctx, `SELECT count(*) FROM range(10000000000) a`); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context: got %v", err)
	}
}

// TestQueryTimeoutAndRowLimit: the endpoint's own limits.
func TestQueryTimeoutAndRowLimit(t *testing.T) {
	l := newTestLake(t, endpointLimits(200*time.Millisecond, 5))
	c := l.connect("")
	ctx := context.Background()
	_, err := c.Exec(ctx, `SELECT count(*) FROM range(10000000000) a`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Errorf("timeout: got %v, want SQLSTATE 57014", err)
	}
	rows, _ := c.Query(ctx, `SELECT * FROM range(10)`)
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); !errors.As(err, &pe) || pe.Code != "54000" || n != 5 {
		t.Errorf("row limit: %d rows, %v; want 5 rows and SQLSTATE 54000", n, err)
	}
	var got int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM range(10)`).Scan(&got); err != nil || got != 10 {
		t.Errorf("after the limits: %v %d", err, got)
	}
}
