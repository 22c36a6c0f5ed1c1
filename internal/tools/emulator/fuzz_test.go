package emulator

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FuzzJSONString checks that appendJSONString writes valid JSON that reads
// back as the input (valid UTF-8) or its replacement-character form.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "line\nbreak\r\ttab", "emoji 🚀", "\x00\x1f", "bad \xff utf8", "<html>&amp;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encoded as invalid JSON %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q read back as %q", s, got)
		}
	})
}

// FuzzRecord checks that records round-trip and that decoding arbitrary
// bytes fails cleanly.
func FuzzRecord(f *testing.F) {
	f.Add(uint64(1), []byte(`"a"`), []byte(nil), []byte("12.50"))
	f.Add(uint64(1<<62), []byte("true"), []byte(`"x"`), []byte(nil))
	f.Fuzz(func(t *testing.T, version uint64, a, b, c []byte) {
		norm := func(x []byte) []byte {
			if len(x) == 0 {
				return nil
			}
			return x
		}
		in := [][]byte{norm(a), norm(b), norm(c)}
		rec := encodeRecord(nil, version, in)
		out := make([][]byte, 3)
		v, err := decodeRecord(rec, out)
		if err != nil || v != version {
			t.Fatalf("decode: version %d, %v", v, err)
		}
		for i := range in {
			if !bytes.Equal(in[i], out[i]) || (in[i] == nil) != (out[i] == nil) {
				t.Fatalf("field %d: %q became %q", i, in[i], out[i])
			}
		}
		_, _ = decodeRecord(append(a, b...), out)
	})
}

// FuzzTokens checks that token parsers never panic and that tokens
// round-trip.
func FuzzTokens(f *testing.F) {
	f.Add(sortKey{vals: [][]byte{[]byte(`"x"`), nil}, id: make([]byte, 16)}.token(3))
	for _, s := range []string{"919042!08/22/2017 08:10:44", "t.5.1776198110.0393a11457ec2fd357f50feeb78b698b", "d.9.1776198110.7", "p.0393a11457ec2fd357f50feeb78b698b.3", "", "!", "t...."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, issued, err := parseDeltaToken(s); err == nil {
			if v2, issued2, err := parseDeltaToken(deltaToken(v, issued)); err != nil || v2 != v || !issued2.Equal(issued) {
				t.Fatalf("delta token %q does not round-trip", s)
			}
		}
		for _, first := range []bool{true, false} {
			if st, err := parseSkipToken(s, first); err == nil {
				if st2, err := parseSkipToken(st.String(), first); err != nil || st2.String() != st.String() {
					t.Fatalf("skip token %q does not round-trip", s)
				}
			}
		}
		_, _, _ = parsePageToken(s)
		if k, rem, err := parseOrderedToken(s, make([]orderTerm, 2)); err == nil {
			if k2, rem2, err := parseOrderedToken(k.token(rem), make([]orderTerm, 2)); err != nil || rem2 != rem || k2.token(rem2) != k.token(rem) {
				t.Fatalf("ordered token %q does not round-trip", s)
			}
		}
	})
}

// FuzzFieldFromJSON checks that every accepted client value is stored as
// valid JSON.
func FuzzFieldFromJSON(f *testing.F) {
	for _, s := range []string{`"text"`, `12`, `12.345`, `-1e3`, `true`, `null`, `"2024-01-02"`, `"2024-01-02T03:04:05Z"`, `"` + uuid.Nil.String() + `"`, `{}`, `[`, `1e400`} {
		f.Add(s)
	}
	tables := catalog()
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return
		}
		for _, tb := range tables[:2] {
			for _, a := range tb.cols {
				if a.Kind.isLookup() {
					continue
				}
				field, err := fieldFromJSON(tb, a, json.RawMessage(raw))
				if err == nil && field != nil && !json.Valid(field) {
					t.Fatalf("%s.%s: %s stored as invalid JSON %s", tb.Name, a.Name, raw, field)
				}
			}
		}
	})
}

// FuzzCompareDecimal checks the exact decimal order against integers
// scaled by 100.
func FuzzCompareDecimal(f *testing.F) {
	f.Add(int64(0), int64(-1))
	f.Add(int64(123450), int64(12345))
	f.Add(int64(-5), int64(5))
	f.Add(int64(-1<<63), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, a, b int64) {
		x, y := string(moneyField(a)), string(moneyField(b))
		want := cmpInt64(a, b)
		if got := compareDecimal(x, y); got != want {
			t.Fatalf("compareDecimal(%s, %s) = %d, want %d", x, y, got, want)
		}
		if got := compareDecimal(strings.TrimSuffix(strings.TrimSuffix(x, "0"), "0"), y); got != want {
			t.Fatalf("compareDecimal of %s with trailing zeros cut, %s = %d, want %d", x, y, got, want)
		}
	})
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FuzzFilter checks that the $filter parser never panics and that what it
// accepts evaluates on any row without panicking.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"name eq 'a'", "contains(name,'x') or not startswith(name,'[a-c]%')", "(revenue gt 1.5 and revenue le 2e3) or revenue eq null",
		"_primarycontactid_value eq 00000000-0000-0000-0000-000000000001", "createdon ge 2024-01-02T03:04:05Z", "name eq 'O''Brian'", "((((", "not not donotemail", "endswith(name,'_')", "1 eq 1"} {
		f.Add(s)
	}
	tables := catalog()
	tb := tables[0]
	layout, _ := newLayout(Config{Scale: 1, Seed: 1}, tables)
	g := newGen(tb, 1, layout)
	g.row(0)
	rows := [][][]byte{make([][]byte, len(tb.cols)), g.fields}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseFilter(tb, s)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("%q: error %v is not an API error", s, err)
			}
			return
		}
		for _, fields := range rows {
			n.eval(rowValue{fields, 7})
		}
	})
}
