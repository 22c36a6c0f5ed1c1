package postgres

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestArrayJSON(t *testing.T) {
	for _, tc := range []struct {
		in    string
		delim byte
		elem  kind
		want  string
	}{
		{"{}", ',', kindInt, "[]"},
		{"{1,2,3}", ',', kindInt, "[1,2,3]"},
		{"[0:1]={7,8}", ',', kindInt, "[7,8]"},
		{"{{1,NULL},{3,4}}", ',', kindInt, "[[1,null],[3,4]]"},
		{`{"a b",c\,d, spaced ,"NULL",null}`, ',', kindString, `["a b","c,d","spaced","NULL",null]`},
		{`{"q\"x\\y"}`, ',', kindString, `["q\"x\\y"]`},
		{"{1.5,NaN,Infinity}", ',', kindFloat, `[1.5,"NaN","Infinity"]`},
		{"{t,f}", ',', kindBool, "[true,false]"},
		{`{"{\"a\": 1}","[2]"}`, ',', kindJSON, `[{"a": 1},[2]]`},
		{"{(0,0),(1,1);(2,2),(3,3)}", ';', kindString, `["(0,0),(1,1)","(2,2),(3,3)"]`},
	} {
		got, err := arrayJSON(tc.in, tc.delim, tc.elem)
		if err != nil || got != tc.want {
			t.Errorf("arrayJSON(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "{", "{1,", "{1}x", `{"a}`, "{,}", "[1:2]", "{1,{2}"} {
		if got, err := arrayJSON(bad, ',', kindInt); err == nil {
			t.Errorf("arrayJSON(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzArrayJSON(f *testing.F) {
	for _, s := range []string{"{}", "{1,2}", `{"a\"b",NULL}`, "{{1},{2}}", "[2:3]={a,b}", "{ x , y }"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range []kind{kindString, kindInt, kindFloat, kindBool, kindJSON} {
			out, err := arrayJSON(s, ',', k)
			if err == nil && !json.Valid([]byte(out)) {
				t.Fatalf("arrayJSON(%q, %d) = %q: not JSON", s, k, out)
			}
		}
	})
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"2024-01-02 03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02 03:04:05.5", time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC)},
		{"2024-01-02 03:04:05.123456+00", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)},
		{"2024-01-02 03:04:05+05:30", time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60))},
		{"12024-01-02", time.Date(12024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"0001-01-01 BC", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		_, off := got.Zone()
		if _, woff := tc.want.Zone(); off != woff {
			t.Errorf("parseTime(%q) offset %d, want %d", tc.in, off, woff)
		}
	}
	for _, bad := range []string{"", "2024", "2024-1-02", "2024-01-02 3:04:05", "2024-01-02 03:04:05.", "2024-01-02x", "2024-01-02 03:04:05+1"} {
		if got, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", bad, got)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2024-01-02", "2024-01-02 03:04:05.123456+00", "0044-03-15 BC", "2024-01-02 03:04:05-07:30:15"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s)
		if err != nil {
			return
		}
		// Whatever parses must print back to the same instant.
		if !strings.HasSuffix(s, " BC") && got.Year() >= 0 && got.Year() <= 9999 {
			if again, err := parseTime(got.Format("2006-01-02 15:04:05.999999999-07:00:00")); err != nil || !again.Equal(got) {
				t.Fatalf("parseTime(%q) = %v does not round-trip: %v, %v", s, got, again, err)
			}
		}
	})
}

func TestKeyID(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"a|b"}, "a|b"},
		{[]string{"a", "b"}, "a|b"},
		{[]string{"a|b", "c"}, `a\|b|c`},
		{[]string{`a\`, "b"}, `a\\|b`},
	} {
		if got := keyID(tc.parts); got != tc.want {
			t.Errorf("keyID(%q) = %q, want %q", tc.parts, got, tc.want)
		}
	}
	if keyID([]string{"a|", "b"}) == keyID([]string{"a", "|b"}) {
		t.Error("distinct composite keys share an Id")
	}
}
