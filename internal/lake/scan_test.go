package lake

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// TestLongRecord: a record longer than the reader's buffer, with a quoted
// field whose quotes do not pair up within the first buffer, is one
// record (the reader once counted the quotes of a full buffer's chunk
// only when a newline ended it).
func TestLongRecord(t *testing.T) {
	for _, n := range []int{1, 100_000, 300_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			long := `"` + strings.Repeat(`a""`, n) + "\nb\""
			in := long + ",x\r\n" + long + "\n" + "y"
			rr := newRecordReader(strings.NewReader(in))
			for i, want := range [][]string{{long, "x"}, {long}, {"y"}} {
				_, fields, err := rr.next()
				if err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
				if !slices.Equal(fields, want) {
					t.Fatalf("record %d: %d fields of %v bytes, want %d", i+1, len(fields), len(strings.Join(fields, "")), len(want))
				}
			}
			if _, _, err := rr.next(); !errors.Is(err, io.EOF) {
				t.Fatalf("want EOF, got %v", err)
			}
		})
	}
}

func TestFieldScanner(t *testing.T) {
	tests := []struct {
		line string
		want []string
		bad  string
	}{
		{line: "", want: []string{""}},
		{line: ",", want: []string{"", ""}},
		{line: "a,b,,c", want: []string{"a", "b", "", "c"}},
		{line: `"a,b","c""d",e,""`, want: []string{`"a,b"`, `"c""d"`, "e", `""`}},
		{line: `"a",`, want: []string{`"a"`, ""}},
		{line: "\"x\ny\",\"\"\"\"", want: []string{"\"x\ny\"", `""""`}},
		{line: `a"b`, bad: "quote inside a bare field"},
		{line: `a,b,c"`, bad: "quote inside a bare field"},
		{line: `"a"b`, bad: "text after a closing quote"},
		{line: `"a`, bad: "unterminated quote"},
		{line: `x,"a""`, bad: "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := splitFields(nil, []byte(tt.line))
			if tt.bad != "" {
				if !errors.Is(err, errBadRecord) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("want %q, got %v", tt.bad, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// splitFieldsRef is the definition of the record syntax fieldScanner
// implements, written for clarity: the split before fieldScanner existed.
func splitFieldsRef(line string) ([]string, error) {
	var dst []string
	s := line
	for {
		if len(s) > 0 && s[0] == '"' {
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return nil, fmt.Errorf("%w: unterminated quote", errBadRecord)
				}
				i += j + 1
				if i < len(s) && s[i] == '"' {
					i++
					continue
				}
				break
			}
			dst = append(dst, s[:i])
			if i == len(s) {
				return dst, nil
			}
			if s[i] != ',' {
				return nil, fmt.Errorf("%w: text after a closing quote", errBadRecord)
			}
			s = s[i+1:]
			continue
		}
		i := strings.IndexByte(s, ',')
		if i < 0 {
			if strings.IndexByte(s, '"') >= 0 {
				return nil, fmt.Errorf("%w: quote inside a bare field", errBadRecord)
			}
			return append(dst, s), nil
		}
		if strings.IndexByte(s[:i], '"') >= 0 {
			return nil, fmt.Errorf("%w: quote inside a bare field", errBadRecord)
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
}

// FuzzFieldScanner checks that fieldScanner splits any line as the
// reference does and fails where it fails, with the same error; and, for
// lines of two fields or more, that compaction's shortcuts agree with the
// split: withSinkCreated replaces exactly the second field, and
// startsWithID finds whether the first field is the first field of another
// line.
func FuzzFieldScanner(f *testing.F) {
	for _, s := range []string{"", "a", `"`, `""`, "a,b", `"a,b",c`, `"a""b",c`, `a"b`, `"a"b`, `,"x",`, "\"\n\",😀", `x,"a""`} {
		f.Add(s, `"1/2/2024 3:04:05 PM"`, "a,b")
	}
	f.Add(`"a,b",c,d`, "", `"a,b"`)
	f.Add(`"a""",c`, "x", `"a""",c`)
	f.Add(`"a",c`, `"1/2/2024 3:04:05 PM"`, `"a,c"`)
	f.Add(`ab,c`, "", `a,b`)
	f.Fuzz(func(t *testing.T, line, sink, other string) {
		want, wantErr := splitFieldsRef(line)
		got, err := splitFields(nil, []byte(line))
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%q: error %v, reference %v", line, err, wantErr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: fields %q, reference %q", line, got, want)
		}
		if err != nil || len(got) < 2 {
			return
		}
		replaced, err := withSinkCreated([]byte("keep:"), []byte(line), []byte(sink))
		wantFields := slices.Clone(got)
		wantFields[1] = sink
		if err != nil || string(replaced) != "keep:"+strings.Join(wantFields, ",") {
			t.Fatalf("%q with SinkCreatedOn %q: %q, %v", line, sink, replaced, err)
		}
		if ofOther, err := splitFieldsRef(other); err == nil {
			id := ofOther[0]
			if same := startsWithID([]byte(line), []byte(id)); same != (got[0] == id) {
				t.Fatalf("startsWithID(%q, %q) = %v, first field %q", line, id, same, got[0])
			}
		}
	})
}
