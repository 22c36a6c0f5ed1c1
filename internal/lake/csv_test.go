package lake

import (
	"bytes"
	"errors"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

func TestValueRoundTrip(t *testing.T) {
	big := strings.Repeat("x\"y,\n€😀", 1<<20/12)
	est := time.FixedZone("", -5*3600)
	tests := []struct {
		name string
		typ  schema.Type
		in   any
		want string
	}{
		{"null", schema.String, nil, ``},
		{"empty string", schema.String, "", `""`},
		{"quotes", schema.String, `say "hi"`, `"say ""hi"""`},
		{"newlines", schema.String, "a\nb\r\nc", "\"a\nb\r\nc\""},
		{"emoji", schema.String, "😀,é", `"😀,é"`},
		{"1MB", schema.String, big, ""},
		{"json", schema.JSON, `{"a":[1,2]}`, `"{""a"":[1,2]}"`},
		{"guid", schema.Guid, "6f9619ff-8b86-d011-b42d-00cf4fc964ff", `6f9619ff-8b86-d011-b42d-00cf4fc964ff`},
		{"int min", schema.Int64, int64(math.MinInt64), `-9223372036854775808`},
		{"int max", schema.Int64, int64(math.MaxInt64), `9223372036854775807`},
		{"true", schema.Boolean, true, `True`},
		{"false", schema.Boolean, false, `False`},
		{"datetime", schema.DateTime, time.Date(2020, 1, 1, 0, 15, 0, 123456700, time.UTC), `"2020-01-01T00:15:00.1234567Z"`},
		{"datetime min", schema.DateTime, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), `"0001-01-01T00:00:00.0000000Z"`},
		{"datetime max", schema.DateTime, time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC), `"9999-12-31T23:59:59.9999999Z"`},
		{"datetimeoffset", schema.DateTimeOffset, time.Date(2020, 1, 1, 0, 15, 0, 0, est), `"2020-01-01T00:15:00.0000000-05:00"`},
		{"1 BC", schema.DateTime, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), `"0000-01-01T00:00:00.0000000Z"`},
		{"4713 BC", schema.DateTime, time.Date(-4712, 11, 24, 12, 0, 0, 0, time.UTC), `"-4712-11-24T12:00:00.0000000Z"`},
		{"BC leap day", schema.DateTimeOffset, time.Date(-4, 2, 29, 1, 2, 3, 400, time.UTC), `"-0004-02-29T01:02:03.0000004+00:00"`},
		{"year 10000", schema.DateTime, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), `"10000-01-01T00:00:00.0000000Z"`},
		{"lake min", schema.DateTime, schema.MinTime, `"-290308-12-22T00:00:00.0000000Z"`},
		{"lake max", schema.DateTimeOffset, schema.MaxTime, `"294247-01-10T04:00:54.7758060+00:00"`},
		{"infinity", schema.DateTime, schema.Infinity, `"infinity"`},
		{"-infinity", schema.DateTimeOffset, schema.NegInfinity, `"-infinity"`},
		{"numeric as text", schema.String, "NaN", `"NaN"`},
		{"json null", schema.JSON, "null", `"null"`},
		{"decimal 38 digits", schema.Decimal, "-1234567890123456789012345678.0123456789", `-1234567890123456789012345678.0123456789`},
		{"double", schema.Double, 1.5e300, `1.5e+300`},
		{"double tiny", schema.Double, -4.9e-324, `-5e-324`},
		{"inf", schema.Double, math.Inf(1), `Infinity`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeValue(nil, tt.typ, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && string(got) != tt.want {
				t.Fatalf("encode = %q, want %q", got, tt.want)
			}
			// Through the record reader, as a one-field record.
			rr := newRecordReader(bytes.NewReader(append(got, '\n')))
			_, fields, err := rr.next()
			if err != nil {
				t.Fatal(err)
			}
			if len(fields) != 1 {
				t.Fatalf("%d fields", len(fields))
			}
			back, err := decodeValue(tt.typ, fields[0])
			if err != nil {
				t.Fatal(err)
			}
			switch want := tt.in.(type) {
			case time.Time:
				if !back.(time.Time).Equal(want) {
					t.Fatalf("decoded %v, want %v", back, want)
				}
			case float64:
				if back.(float64) != want && !(math.IsNaN(want)) {
					t.Fatalf("decoded %v, want %v", back, want)
				}
			default:
				if back != tt.in {
					t.Fatalf("decoded %.60q, want %.60q", back, tt.in)
				}
			}
		})
	}
}

func TestValueErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  schema.Type
		in   any
	}{
		{"string in int", schema.Int64, "12"},
		{"int in string", schema.String, 12},
		{"bad guid", schema.Guid, "not-a-guid"},
		{"braced guid", schema.Guid, "{6f9619ff-8b86-d011-b42d-00cf4fc964ff}"},
		{"float decimal", schema.Decimal, 1.5},
		{"exponent decimal", schema.Decimal, "1e5"},
		{"string date", schema.DateTime, "2020-01-01"},
		{"after the lake's last time", schema.DateTime, schema.MaxTime.Add(time.Microsecond)},
		{"before the lake's first time", schema.DateTimeOffset, schema.MinTime.Add(-time.Nanosecond)},
		{"wall clock before the first time", schema.DateTimeOffset, schema.MinTime.In(time.FixedZone("", -3600))},
		{"bad infinity", schema.DateTime, schema.InfiniteTime(2)},
		{"int bool", schema.Boolean, 1},
		{"float32", schema.Double, float32(1)},
		{"unknown type", schema.Type("money"), "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := encodeValue(nil, tt.typ, tt.in); err == nil {
				t.Fatalf("encoded %q, want an error", got)
			}
		})
	}
}

func TestRecordReader(t *testing.T) {
	in := "a,\"b\nc\",,\"\"\r\n1,2\n\"x\"\"y\"\nlast"
	want := [][]string{{"a", "\"b\nc\"", "", `""`}, {"1", "2"}, {`"x""y"`}, {"last"}}
	rr := newRecordReader(strings.NewReader(in))
	for i, w := range want {
		_, f, err := rr.next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if strings.Join(f, "|") != strings.Join(w, "|") {
			t.Fatalf("record %d = %q, want %q", i, f, w)
		}
	}
	if _, _, err := rr.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
	for _, bad := range []string{"\"open\n", "a\"b\n", "\"x\"y\n"} {
		rr := newRecordReader(strings.NewReader(bad))
		if _, _, err := rr.next(); !errors.Is(err, errBadRecord) {
			t.Errorf("%q: want errBadRecord, got %v", bad, err)
		}
	}
}

// FuzzRecord checks that any string survives encode then parse, and that
// parsing arbitrary bytes never panics and re-encodes to the same fields.
func FuzzRecord(f *testing.F) {
	for _, s := range []string{"", "a", `"`, "\n", "\r\n", `""`, "a,b", "😀", "\"a\"\"b\",c\n", "x\r"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, s1, s2 string) {
		var buf []byte
		buf, _ = encodeValue(buf, schema.String, s1)
		buf = append(buf, ',')
		buf, _ = encodeValue(buf, schema.String, s2)
		buf = append(buf, ",12\n"...)
		rr := newRecordReader(bytes.NewReader(buf))
		_, fields, err := rr.next()
		if err != nil {
			t.Fatalf("parse %q: %v", buf, err)
		}
		if len(fields) != 3 {
			t.Fatalf("parse %q: %d fields", buf, len(fields))
		}
		for i, want := range []string{s1, s2} {
			got, err := decodeValue(schema.String, fields[i])
			if err != nil || got != want {
				t.Fatalf("field %d = %q (%v), want %q", i, got, err, want)
			}
		}
		if _, _, err := rr.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("want EOF after one record, got %v", err)
		}
		// Arbitrary input: parse must not panic; a parsed record joins
		// back to its own bytes.
		rr = newRecordReader(strings.NewReader(s1))
		for {
			line, fields, err := rr.next()
			if err != nil {
				break
			}
			if strings.Join(fields, ",") != string(line) {
				t.Fatalf("fields %q do not join to %q", fields, line)
			}
		}
	})
}

// FuzzRow encodes a change of every column type with fuzzed values under a
// table layout, parses the record back and checks every value survives.
func FuzzRow(f *testing.F) {
	f.Add("Ann", `{"a":1}`, int64(0), 0.5, true, int64(1700000000), uint32(123456789), -60, "12.50")
	f.Add("", "", int64(-1), math.Inf(-1), false, int64(-62135596800), uint32(0), 840, "-0.0000000001")
	f.Add("a\"b\nc,😀", "\r\n", int64(math.MaxInt64), -0.0, false, int64(253402300799), uint32(999999999), -720, "99999999999999999999999999999999999999")
	f.Fuzz(func(t *testing.T, s, js string, n int64, d float64, b bool, secs int64, frac uint32, offsetMin int, dec string) {
		tbl := &schema.Table{Name: "fuzz", Key: []string{"id"}, Columns: []schema.Column{
			{Name: "id", Type: schema.Guid}, {Name: "s", Type: schema.String}, {Name: "j", Type: schema.JSON},
			{Name: "n", Type: schema.Int64}, {Name: "d", Type: schema.Double}, {Name: "b", Type: schema.Boolean},
			{Name: "t", Type: schema.DateTime}, {Name: "o", Type: schema.DateTimeOffset}, {Name: "m", Type: schema.Decimal},
		}}
		cols, err := newLayout(tbl)
		if err != nil {
			t.Fatal(err)
		}
		// Seven fractional digits: 100 ns steps.
		tm := time.Unix(secs, int64(frac%1e9)/100*100).UTC()
		off := time.FixedZone("", (offsetMin%(14*60))*60)
		id := "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
		vals := map[string]any{"id": id, "s": s, "j": js, "n": n, "d": d, "b": b, "t": tm, "o": tm.In(off), "m": dec}
		ch := source.Change{ID: id, Version: n}
		for name, v := range vals {
			ch.Columns, ch.Values = append(ch.Columns, name), append(ch.Values, v)
		}
		line, err := encodeRow(newRowEncoder("fuzz", cols, time.Unix(0, 0)), &ch)
		if err != nil {
			// Only values outside the documented domain may fail.
			var ve *ValueError
			if !errors.As(err, &ve) || (ve.Column != "m" && ve.Column != "t" && ve.Column != "o") {
				t.Fatalf("encode: %v", err)
			}
			return
		}
		rr := newRecordReader(bytes.NewReader(line))
		_, fields, err := rr.next()
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		if len(fields) != len(cols) {
			t.Fatalf("%d fields, layout %d: %q", len(fields), len(cols), line)
		}
		for i, c := range cols {
			want, ok := vals[c.Name]
			if !ok {
				continue
			}
			got, err := decodeValue(c.Type, fields[i])
			if err != nil {
				t.Fatalf("column %s: decode %q: %v", c.Name, fields[i], err)
			}
			switch w := want.(type) {
			case time.Time:
				if !got.(time.Time).Equal(w) {
					t.Fatalf("column %s: %v, want %v", c.Name, got, w)
				}
			case float64:
				g := got.(float64)
				if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
					t.Fatalf("column %s: %v, want %v", c.Name, g, w)
				}
			default:
				if got != want {
					t.Fatalf("column %s: %q, want %q", c.Name, got, want)
				}
			}
		}
	})
}

// decimalRef is the definition isDecimal implements.
var decimalRef = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func TestIsDecimal(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"0", true}, {"-0", true}, {"12.50", true}, {"-1234567890.50", true}, {"007", true},
		{"99999999999999999999999999999999999999", true}, {"-0.0000000001", true},
		{"", false}, {"-", false}, {".5", false}, {"5.", false}, {"-.5", false}, {"+1", false},
		{"1e5", false}, {"1.2.3", false}, {"--1", false}, {" 1", false}, {"1 ", false},
		{"1\n", false}, {"NaN", false}, {"Infinity", false}, {"1,5", false}, {"١", false},
	} {
		if got := isDecimal(tc.s); got != tc.want {
			t.Errorf("isDecimal(%q) = %v, want %v", tc.s, got, tc.want)
		}
		if ref := decimalRef.MatchString(tc.s); ref != tc.want {
			t.Errorf("reference regexp on %q = %v, want %v", tc.s, ref, tc.want)
		}
	}
}

// FuzzDecimal checks that isDecimal accepts exactly the language of its
// defining regular expression.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"", "0", "-1.5", "1.", ".1", "-", "1.2.3", "12a", "-0.00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDecimal(s), decimalRef.MatchString(s); got != want {
			t.Fatalf("isDecimal(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}

// FuzzDateTime checks that appendDateTime writes exactly what the layouts
// it implements make time.Time.AppendFormat write.
func FuzzDateTime(f *testing.F) {
	f.Add(int64(0), uint32(0), 0)
	f.Add(int64(1700000000), uint32(123456789), -300)
	f.Add(int64(-62135596800), uint32(999999999), 840)     // 0001-01-01 UTC
	f.Add(int64(253402300799), uint32(99), -1)             // 9999-12-31 23:59:59 UTC, -1 s
	f.Add(int64(-62135596800), uint32(0), -3600)           // year 0 in the zone
	f.Add(int64(1700000000), uint32(0), 45296)             // +12:34:56
	f.Add(int64(1700000000), uint32(5), -59)               // rounds to +00:00
	f.Add(int64(1700000000), uint32(5), 100*3600+60*59+17) // three-digit hours
	for _, d := range []time.Time{
		time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		f.Add(d.Unix(), uint32(0), 0)
	}
	f.Fuzz(func(t *testing.T, secs int64, nanos uint32, offset int) {
		tm := time.Unix(secs, int64(nanos%1e9)).In(time.FixedZone("", offset))
		for _, withOffset := range []bool{false, true} {
			layout, in := dateTimeLayout, tm.UTC()
			if withOffset {
				layout, in = dateTimeOffsetLayout, tm
			}
			if got, want := appendDateTime([]byte("x"), in, withOffset), in.AppendFormat([]byte("x"), layout); !bytes.Equal(got, want) {
				t.Fatalf("%v (offset %v): %q, AppendFormat writes %q", in, withOffset, got, want)
			}
		}
	})
}

// FuzzDateTimeRoundTrip checks that every time the lake can hold, BC and
// five-digit years included, reads back from its field as written (to the
// 100 ns the layout keeps), and that no field makes the reader panic.
func FuzzDateTimeRoundTrip(f *testing.F) {
	f.Add(int64(0), uint32(0), 0, "")
	f.Add(int64(-62198755200), uint32(5), 0, `"-0001-01-01T00:00:00.0000000Z"`)
	f.Add(int64(-210866803200), uint32(0), 3600, `"10000-02-29T00:00:00.0000000Z"`)
	f.Add(int64(9223372036854), uint32(775806000), 0, `"-0000-01-01T00:00:00.0000000Z"`)
	f.Add(int64(-9223372022400), uint32(0), -60, `"infinity"`)
	f.Fuzz(func(t *testing.T, secs int64, nanos uint32, offset int, raw string) {
		for _, typ := range []schema.Type{schema.DateTime, schema.DateTimeOffset} {
			_, _ = decodeValue(typ, raw)
		}
		tm := time.Unix(secs, int64(nanos%1e9)).In(time.FixedZone("", offset%(18*3600)/60*60))
		for _, typ := range []schema.Type{schema.DateTime, schema.DateTimeOffset} {
			field, err := encodeValue(nil, typ, tm)
			if err != nil {
				_, off := tm.Zone()
				if schema.TimeInRange(tm) && schema.TimeInRange(tm.UTC().Add(time.Duration(off)*time.Second)) {
					t.Fatalf("%v (%s): %v", tm, typ, err)
				}
				continue
			}
			back, err := decodeValue(typ, string(field))
			if err != nil {
				t.Fatalf("%v (%s) written as %s: %v", tm, typ, field, err)
			}
			if got, ok := back.(time.Time); !ok || !got.Equal(tm.Truncate(100*time.Nanosecond)) {
				t.Fatalf("%v (%s) written as %s reads back as %v", tm, typ, field, back)
			}
		}
	})
}
