package postgres

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
)

func be16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// usSince2000 is t as a binary timestamp.
func usSince2000(t time.Time) []byte {
	return be64((t.Unix()-pgEpoch)*1e6 + int64(t.Nanosecond()/1e3))
}

func TestDecodeBinary(t *testing.T) {
	ts := time.Date(2020, 5, 27, 15, 25, 7, 123456000, time.UTC)
	for _, tc := range []struct {
		name    string
		oid     uint32
		v       []byte
		want    any
		wantErr bool
	}{
		{"smallint", oidInt2, be16(-5), int64(-5), false},
		{"integer", oidInt4, be32(math.MinInt32), int64(math.MinInt32), false},
		{"bigint", oidInt8, be64(math.MaxInt64), int64(math.MaxInt64), false},
		{"true", oidBool, []byte{1}, true, false},
		{"false", oidBool, []byte{0}, false, false},
		{"timestamptz", oidTimestamptz, usSince2000(ts), ts, false},
		{"timestamp before 2000", oidTimestamp, usSince2000(time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)), time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), false},
		{"timestamp BC", oidTimestamp, usSince2000(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)), time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC), false},
		{"infinity", oidTimestamptz, be64(math.MaxInt64), schema.Infinity, false},
		{"-infinity", oidTimestamp, be64(math.MinInt64), schema.NegInfinity, false},
		{"after the lake's last time", oidTimestamp, be64(math.MaxInt64 - 1), schema.Infinity, false},
		{"short", oidInt8, be32(1), nil, true},
		{"long bool", oidBool, []byte{0, 1}, nil, true},
		{"unknown type", oidNumeric, be64(1), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBinary(tc.oid, tc.v)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestBinaryOID(t *testing.T) {
	for _, tc := range []struct {
		oid  uint32
		k    kind
		want bool
	}{
		{oidInt8, kindInt, true},
		{oidOID, kindInt, false},
		{oidBool, kindBool, true},
		{oidTimestamptz, kindTimestamptz, true},
		{oidTimestamptz, kindTimestamp, false},
		{oidDate, kindDate, false},
		{oidNumeric, kindDecimal, false},
		{oidText, kindString, false},
	} {
		if got := binaryOID(tc.oid, tc.k); got != tc.want {
			t.Errorf("binaryOID(%d, %d) = %v, want %v", tc.oid, tc.k, got, tc.want)
		}
	}
}

// FuzzDecodeBinary checks that binary values decode to what the text
// decoder gives for the server's text output of the same value, and that
// no input makes decodeBinary panic.
func FuzzDecodeBinary(f *testing.F) {
	f.Add(int64(0), []byte{})
	f.Add(int64(-1), []byte{1})
	f.Add(int64(643908307123456), []byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add(int64(-63082281600000000), []byte{0xff})
	f.Add(int64(math.MinInt64+1), []byte{0, 0})
	f.Fuzz(func(t *testing.T, n int64, raw []byte) {
		for _, oid := range []uint32{oidBool, oidInt2, oidInt4, oidInt8, oidTimestamp, oidTimestamptz} {
			_, _ = decodeBinary(oid, raw)
		}
		for _, c := range []struct {
			oid uint32
			v   []byte
			n   int64
		}{{oidInt2, be16(int16(n)), int64(int16(n))}, {oidInt4, be32(int32(n)), int64(int32(n))}, {oidInt8, be64(n), n}} {
			got, err := decodeBinary(c.oid, c.v)
			want, werr := decoder{kind: kindInt}.decode([]byte(strconv.FormatInt(c.n, 10)))
			if err != nil || werr != nil || got != want {
				t.Fatalf("type %d, %d: binary %#v (%v), text %#v (%v)", c.oid, c.n, got, err, want, werr)
			}
		}
		got, err := decodeBinary(oidTimestamptz, be64(n))
		if err != nil {
			t.Fatal(err)
		}
		tm, ok := got.(time.Time)
		if !ok {
			// Infinite: only ±infinity and times past the lake's last.
			if n != math.MaxInt64 && n != math.MinInt64 && !time.Unix(pgEpoch+n/1e6+1, 0).After(schema.MaxTime) {
				t.Fatalf("%d: binary %v, a finite time", n, got)
			}
			return
		}
		// The server's ISO output under TimeZone=UTC: BC years count
		// from 1 with a suffix.
		text := tm.Format("2006-01-02 15:04:05.999999") + "+00"
		if y := tm.Year(); y <= 0 {
			text = fmt.Sprintf("%04d", 1-y) + tm.Format("-01-02 15:04:05.999999") + "+00 BC"
		}
		want, err := decoder{kind: kindTimestamptz}.decode([]byte(text))
		if err != nil || got != want {
			t.Fatalf("%d: binary %v, text %q gives %v (%v)", n, got, text, want, err)
		}
	})
}

// BenchmarkDecodeRow decodes the rows of the postgres-initial scenario's
// table (internal/bench) as the initial copy fetches them: the key in text,
// timestamptz, smallint and boolean in binary, the rest in text.
func BenchmarkDecodeRow(b *testing.B) {
	t := &table{name: "orders", desc: &schema.Table{Name: "orders", Key: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Int64}, {Name: "created_at", Type: schema.DateTimeOffset},
		{Name: "customer", Type: schema.String}, {Name: "amount", Type: schema.Decimal},
		{Name: "status", Type: schema.Int64}, {Name: "paid", Type: schema.Boolean},
		{Name: "note", Type: schema.String},
	}}, dec: []decoder{{kind: kindInt}, {kind: kindTimestamptz}, {kind: kindString}, {kind: kindDecimal}, {kind: kindInt}, {kind: kindBool}, {kind: kindString}}, key: []int{0},
		cols: []string{"id", "created_at", "customer", "amount", "status", "paid", "note"}}
	bin := []uint32{0, oidTimestamptz, 0, 0, oidInt2, oidBool, 0}
	const rows = 10_000
	vals := make([][][]byte, rows)
	for i := range vals {
		vals[i] = [][]byte{
			[]byte(strconv.Itoa(i)), usSince2000(time.Date(2020, 1, 1, 0, 0, i*17, 0, time.UTC)),
			[]byte("customer " + strconv.Itoa(i%100000)), []byte(strconv.Itoa(i%1000) + ".25"),
			be16(int16(i % 5)), {byte(i % 2)}, []byte(`note "` + strconv.Itoa(i) + `"`),
		}
	}
	b.ReportAllocs()
	b.ReportMetric(rows, "rows/op")
	row := make([]any, len(t.cols))
	var texts textArena
	for b.Loop() {
		for _, v := range vals {
			clear(row)
			if err := decodeRow(t, bin, v, row, &texts); err != nil {
				b.Fatal(err)
			}
		}
		texts.fill()
	}
}

// TestTextArena: values added before a fill land in their slots, equal to
// what was added (including empty ones and emoji), and the arena starts
// afresh after each fill.
func TestTextArena(t *testing.T) {
	var a textArena
	for round, vals := range [][]string{{"a", "", "naïve 🎉", "x,y\n\"z\""}, {"second"}} {
		row := make([]any, len(vals))
		for i, v := range vals {
			a.add(&row[i], []byte(v))
		}
		a.fill()
		for i, v := range vals {
			if row[i] != v {
				t.Errorf("round %d, value %d: %q, want %q", round, i, row[i], v)
			}
		}
		if len(a.buf) != 0 || len(a.slots) != 0 {
			t.Errorf("round %d: the arena keeps %d bytes and %d slots after fill", round, len(a.buf), len(a.slots))
		}
	}
}
