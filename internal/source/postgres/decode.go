package postgres

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
)

// kind says how a column's text value (PostgreSQL's output function under
// the session settings in sessionParams) becomes its schema Go value. The
// same decoder serves the initial copy (text result format) and the change
// stream (pgoutput sends text), so both paths produce identical values.
type kind uint8

const (
	kindString kind = iota // text as is (text, varchar, enum, time, interval, other types)
	kindInt
	kindDecimal
	kindFloat
	kindBool
	kindDate
	kindTimestamp
	kindTimestamptz
	kindGuid
	kindJSON
	kindBytea
	kindArray
)

// sessionParams fix the text output of every connection lakelink opens, so
// that decoding never depends on the server's or role's defaults.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "iso_8601",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
	"application_name":   "lakelink",
}

// decoder converts one column's text values.
type decoder struct {
	kind kind
	// For arrays: how elements render in JSON, and the element delimiter.
	elem  kind
	delim byte
}

// decode converts a non-NULL text value, as docs/postgres.md's type table
// says: date and timestamp ±infinity become schema's infinite times, and
// times after schema.MaxTime (which the lake cannot hold) too. NaN in a
// numeric(p,s) column becomes NULL: no decimal holds it (an unconstrained
// numeric is text, NaN and ±Infinity included).
//
// It takes bytes (as they come off the wire) so that numbers, booleans and
// times are parsed without first copying the text into a string.
func (d decoder) decode(text []byte) (any, error) {
	switch d.kind {
	case kindString, kindJSON:
		return string(text), nil
	case kindGuid:
		return strings.ToLower(string(text)), nil
	case kindInt:
		return strconv.ParseInt(string(text), 10, 64)
	case kindDecimal:
		switch string(text) {
		case "NaN", "Infinity", "-Infinity":
			return nil, nil
		}
		return string(text), nil
	case kindFloat:
		return strconv.ParseFloat(string(text), 64)
	case kindBool:
		switch string(text) {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("boolean %q is neither t nor f", text)
	case kindDate, kindTimestamp, kindTimestamptz:
		switch string(text) {
		case "infinity":
			return schema.Infinity, nil
		case "-infinity":
			return schema.NegInfinity, nil
		}
		t, err := parseTime(string(text))
		if err != nil {
			return nil, err
		}
		return lakeTime(t), nil
	case kindBytea:
		b, ok := bytes.CutPrefix(text, []byte(`\x`))
		if !ok {
			return nil, fmt.Errorf("bytea value is not in hex output format")
		}
		raw := make([]byte, hex.DecodedLen(len(b)))
		if _, err := hex.Decode(raw, b); err != nil {
			return nil, fmt.Errorf("bytea value: %w", err)
		}
		return base64.StdEncoding.EncodeToString(raw), nil
	case kindArray:
		return arrayJSON(string(text), d.delim, d.elem)
	}
	return nil, fmt.Errorf("unknown value kind %d", d.kind)
}

// lakeTime is t, or schema.Infinity when t is after schema.MaxTime
// (PostgreSQL's timestamps reach 294276 AD and its dates 5874897 AD, the
// lake's times 294247 AD). PostgreSQL's earliest time, 4713 BC, is far
// inside the lake's range.
func lakeTime(t time.Time) any {
	if t.After(schema.MaxTime) {
		return schema.Infinity
	}
	return t
}

// parseTime reads PostgreSQL's ISO output of date, timestamp and timestamptz:
// "YYYY-MM-DD[ HH:MM:SS[.ffffff]][±HH[:MM[:SS]]][ BC]". Years may have more
// than four digits. Without an offset the result is in UTC; with one, it
// keeps the offset (timestamptz under TimeZone=UTC always has +00).
func parseTime(s string) (time.Time, error) {
	orig := s
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("date/time value %q is not in ISO output format", orig)
	}
	bc := false
	if rest, ok := strings.CutSuffix(s, " BC"); ok {
		s, bc = rest, true
	}
	num := func(n int) (int, bool) {
		if len(s) < n {
			return 0, false
		}
		v := 0
		for i := range n {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		s = s[n:]
		return v, true
	}
	yl := strings.IndexByte(s, '-')
	if yl < 4 {
		return bad()
	}
	year, ok := num(yl)
	if !ok || len(s) < 6 || s[0] != '-' || s[3] != '-' {
		return bad()
	}
	s = s[1:]
	month, ok1 := num(2)
	s = s[1:]
	day, ok2 := num(2)
	if !ok1 || !ok2 {
		return bad()
	}
	var hour, minute, sec, nsec int
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
		var ok3, ok4, ok5 bool
		hour, ok3 = num(2)
		if !ok3 || len(s) < 1 || s[0] != ':' {
			return bad()
		}
		s = s[1:]
		minute, ok4 = num(2)
		if !ok4 || len(s) < 1 || s[0] != ':' {
			return bad()
		}
		s = s[1:]
		sec, ok5 = num(2)
		if !ok5 {
			return bad()
		}
		if len(s) > 0 && s[0] == '.' {
			s = s[1:]
			n := 0
			for n < len(s) && s[n] >= '0' && s[n] <= '9' {
				n++
			}
			if n == 0 || n > 9 {
				return bad()
			}
			frac, _ := num(n)
			for range 9 - n {
				frac *= 10
			}
			nsec = frac
		}
	}
	loc := time.UTC
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		sign := 1
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
		parts := [3]int{}
		for i := range parts {
			if i > 0 {
				if len(s) == 0 {
					break
				}
				if s[0] != ':' {
					return bad()
				}
				s = s[1:]
			}
			v, ok := num(2)
			if !ok {
				return bad()
			}
			parts[i] = v
		}
		if off := sign * (parts[0]*3600 + parts[1]*60 + parts[2]); off != 0 {
			loc = time.FixedZone("", off)
		}
	}
	if s != "" {
		return bad()
	}
	if bc {
		year = 1 - year
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), nil
}

// arrayJSON turns PostgreSQL's array output ("{1,2,NULL}", "{{a,\"b c\"}}",
// "[0:1]={x,y}") into JSON text: nested arrays stay nested, NULL becomes
// null, numbers and booleans become JSON numbers and booleans (NaN and
// infinities, which JSON lacks, become strings), json elements are embedded,
// everything else becomes a JSON string of the element's text.
func arrayJSON(text string, delim byte, elem kind) (string, error) {
	p := arrayParser{src: text, delim: delim, elem: elem}
	if strings.HasPrefix(text, "[") {
		// Explicit bounds ("[0:2]={...}") precede arrays not starting at 1.
		i := strings.Index(text, "=")
		if i < 0 {
			return "", fmt.Errorf("array value with bounds but no '='")
		}
		p.pos = i + 1
	}
	out := make([]byte, 0, len(text)+8)
	out, err := p.array(out, 0)
	if err != nil {
		return "", err
	}
	p.space()
	if p.pos != len(p.src) {
		return "", fmt.Errorf("array value has text after its closing brace at byte %d", p.pos)
	}
	return string(out), nil
}

type arrayParser struct {
	src   string
	pos   int
	delim byte
	elem  kind
}

// maxArrayDepth bounds nesting (PostgreSQL allows 6 dimensions).
const maxArrayDepth = 16

func (p *arrayParser) space() {
	for p.pos < len(p.src) && isArraySpace(p.src[p.pos]) {
		p.pos++
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) array(out []byte, depth int) ([]byte, error) {
	if depth > maxArrayDepth {
		return nil, fmt.Errorf("array value nested deeper than %d", maxArrayDepth)
	}
	p.space()
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return nil, fmt.Errorf("array value: expected '{' at byte %d", p.pos)
	}
	p.pos++
	out = append(out, '[')
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return append(out, ']'), nil
	}
	for first := true; ; first = false {
		if !first {
			out = append(out, ',')
		}
		p.space()
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("array value ends inside an array")
		}
		var err error
		switch p.src[p.pos] {
		case '{':
			out, err = p.array(out, depth+1)
		case '"':
			out, err = p.quoted(out)
		default:
			out, err = p.unquoted(out)
		}
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("array value ends inside an array")
		}
		switch p.src[p.pos] {
		case '}':
			p.pos++
			return append(out, ']'), nil
		case p.delim:
			p.pos++
		default:
			return nil, fmt.Errorf("array value: unexpected %q at byte %d", p.src[p.pos], p.pos)
		}
	}
}

func (p *arrayParser) quoted(out []byte) ([]byte, error) {
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("array value: unterminated quoted element")
		}
		c := p.src[p.pos]
		p.pos++
		switch c {
		case '"':
			return p.element(out, b.String(), true)
		case '\\':
			if p.pos >= len(p.src) {
				return nil, fmt.Errorf("array value: backslash at end")
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
}

func (p *arrayParser) unquoted(out []byte) ([]byte, error) {
	var b strings.Builder
	// Trailing unescaped white space is not part of an unquoted element.
	keep := 0
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == p.delim || c == '}' || c == '{' || c == '"' {
			break
		}
		p.pos++
		if c == '\\' {
			if p.pos >= len(p.src) {
				return nil, fmt.Errorf("array value: backslash at end")
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
			keep = b.Len()
			continue
		}
		b.WriteByte(c)
		if !isArraySpace(c) {
			keep = b.Len()
		}
	}
	s := b.String()[:keep]
	if s == "" {
		return nil, fmt.Errorf("array value: empty unquoted element at byte %d", p.pos)
	}
	if strings.EqualFold(s, "NULL") {
		return append(out, "null"...), nil
	}
	return p.element(out, s, false)
}

func (p *arrayParser) element(out []byte, s string, quoted bool) ([]byte, error) {
	switch p.elem {
	case kindInt, kindFloat, kindDecimal:
		// json.Valid rejects what JSON numbers cannot spell: NaN, Infinity,
		// leading zeros.
		if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
			return append(out, s...), nil
		}
	case kindBool:
		switch s {
		case "t":
			return append(out, "true"...), nil
		case "f":
			return append(out, "false"...), nil
		}
	case kindJSON:
		if json.Valid([]byte(s)) {
			return append(out, s...), nil
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}

// keyID makes the lake Id from the text of the key columns. A one-column key
// is its value as is. A composite key joins its values with "|" after
// escaping "\" as "\\" and "|" as "\|" in each, so distinct keys never share
// an Id.
func keyID(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('|')
		}
		for j := 0; j < len(p); j++ {
			if p[j] == '\\' || p[j] == '|' {
				b.WriteByte('\\')
			}
			b.WriteByte(p[j])
		}
	}
	return b.String()
}

// cdmType is the CDM type each kind lands in.
func (k kind) cdmType() schema.Type {
	switch k {
	case kindInt:
		return schema.Int64
	case kindDecimal:
		return schema.Decimal
	case kindFloat:
		return schema.Double
	case kindBool:
		return schema.Boolean
	case kindDate, kindTimestamp:
		return schema.DateTime
	case kindTimestamptz:
		return schema.DateTimeOffset
	case kindGuid:
		return schema.Guid
	case kindJSON, kindArray:
		return schema.JSON
	}
	return schema.String
}
