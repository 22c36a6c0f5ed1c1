package lake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lakelink/lakelink/internal/csvfield"
	"github.com/lakelink/lakelink/internal/schema"
)

// Value formats of the lake's CSV rows (reference section 2; docs/lake-format.md).
const (
	// sinkLayout is the M/d/yyyy h:mm:ss AM/PM format of SinkCreatedOn and
	// SinkModifiedOn, always in UTC.
	sinkLayout = "1/2/2006 3:04:05 PM"
	// dateTimeLayout has the 7 fractional digits Synapse writes.
	dateTimeLayout       = "2006-01-02T15:04:05.0000000Z"
	dateTimeOffsetLayout = "2006-01-02T15:04:05.0000000-07:00"
)

// isDecimal reports whether s is plain decimal notation, the language of
// ^-?[0-9]+(\.[0-9]+)?$: an optional minus, digits, and optionally a point
// followed by digits. A byte loop, because it runs for every decimal value
// written and a regexp match costs several times more.
func isDecimal(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	i := skipDigits(s)
	if i == 0 {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	frac := s[i+1:]
	n := skipDigits(frac)
	return n > 0 && n == len(frac)
}

// skipDigits returns the length of the run of ASCII digits s starts with.
func skipDigits(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// encodeValue appends the CSV field of v for a column of type t. A nil value
// is NULL, written as an empty field. Quoting follows the reference: strings
// and date-times quoted, everything else bare; every bare form is free of
// commas, quotes and newlines by construction.
func encodeValue(buf []byte, t schema.Type, v any) ([]byte, error) {
	if v == nil {
		return buf, nil
	}
	switch t {
	case schema.String, schema.JSON:
		s, ok := v.(string)
		if !ok {
			return buf, fmt.Errorf("want a string, got %T", v)
		}
		return csvfield.AppendQuoted(buf, s), nil
	case schema.Guid:
		s, ok := v.(string)
		if !ok {
			return buf, fmt.Errorf("want a GUID string, got %T", v)
		}
		return appendGUID(buf, s)
	case schema.Int64:
		switch n := v.(type) {
		case int64:
			return strconv.AppendInt(buf, n, 10), nil
		case int:
			return strconv.AppendInt(buf, int64(n), 10), nil
		case int32:
			return strconv.AppendInt(buf, int64(n), 10), nil
		}
		return buf, fmt.Errorf("want an int64, got %T", v)
	case schema.Boolean:
		b, ok := v.(bool)
		if !ok {
			return buf, fmt.Errorf("want a bool, got %T", v)
		}
		if b {
			return append(buf, "True"...), nil
		}
		return append(buf, "False"...), nil
	case schema.DateTime, schema.DateTimeOffset:
		if inf, ok := v.(schema.InfiniteTime); ok {
			switch inf {
			case schema.Infinity:
				return append(buf, `"infinity"`...), nil
			case schema.NegInfinity:
				return append(buf, `"-infinity"`...), nil
			}
			return buf, fmt.Errorf("infinite time %d is neither Infinity nor NegInfinity", inf)
		}
		tm, ok := v.(time.Time)
		if !ok {
			return buf, fmt.Errorf("want a time.Time, got %T", v)
		}
		// The lake database reads the wall clock, then applies the offset:
		// both must be in its range.
		_, off := tm.Zone()
		if !schema.TimeInRange(tm) || !schema.TimeInRange(tm.UTC().Add(time.Duration(off)*time.Second)) {
			return buf, fmt.Errorf("%s is outside the times the lake can hold (%s to %s UTC)",
				tm.Format(time.RFC3339Nano), schema.MinTime.Format(time.RFC3339), schema.MaxTime.Format(time.RFC3339Nano))
		}
		buf = append(buf, '"')
		if t == schema.DateTime {
			buf = appendDateTime(buf, tm.UTC(), false)
		} else {
			buf = appendDateTime(buf, tm, true)
		}
		return append(buf, '"'), nil
	case schema.Decimal:
		s, ok := v.(string)
		if !ok {
			return buf, fmt.Errorf("want a decimal string, got %T", v)
		}
		if !isDecimal(s) {
			return buf, fmt.Errorf("want plain decimal notation, got %q", s)
		}
		return append(buf, s...), nil
	case schema.Double:
		f, ok := v.(float64)
		if !ok {
			return buf, fmt.Errorf("want a float64, got %T", v)
		}
		switch {
		case math.IsNaN(f):
			return append(buf, "NaN"...), nil
		case math.IsInf(f, 1):
			return append(buf, "Infinity"...), nil
		case math.IsInf(f, -1):
			return append(buf, "-Infinity"...), nil
		}
		return strconv.AppendFloat(buf, f, 'g', -1, 64), nil
	}
	return buf, fmt.Errorf("unknown column type %q", t)
}

// appendDateTime appends t as t.AppendFormat(buf, dateTimeOffsetLayout)
// does when withOffset, else as t.AppendFormat(buf, dateTimeLayout), byte for
// byte. It is hand-written because interpreting the layout for every value
// took a third of the CPU time of encoding rows; years outside 1..9999
// (rare: BC dates and five-digit years, written in ISO 8601's expanded form
// as AppendFormat writes it) take the general path.
func appendDateTime(buf []byte, t time.Time, withOffset bool) []byte {
	// One pass from Unix seconds to the civil date and clock in t's zone,
	// where Date, Clock and Zone would each convert again.
	_, offset := t.Zone()
	secs := t.Unix() + int64(offset)
	days := secs / 86400
	if secs%86400 < 0 {
		days--
	}
	clock := int(secs - days*86400)
	year, month, day := civilDate(days)
	if year < 1 || year > 9999 {
		if withOffset {
			return t.AppendFormat(buf, dateTimeOffsetLayout)
		}
		return t.AppendFormat(buf, dateTimeLayout)
	}
	buf = appendDigits(buf, year, 4)
	buf = append(buf, '-')
	buf = appendDigits(buf, month, 2)
	buf = append(buf, '-')
	buf = appendDigits(buf, day, 2)
	buf = append(buf, 'T')
	buf = appendDigits(buf, clock/3600, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, clock/60%60, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, clock%60, 2)
	buf = append(buf, '.')
	// Seven fractional digits, truncated as the layout does.
	buf = appendDigits(buf, t.Nanosecond()/100, 7)
	if !withOffset {
		return append(buf, 'Z')
	}
	// As the layout's -07:00: whole minutes of the offset, truncated.
	zone := offset / 60
	if zone < 0 {
		buf = append(buf, '-')
		zone = -zone
	} else {
		buf = append(buf, '+')
	}
	buf = appendDigits(buf, zone/60, 2)
	buf = append(buf, ':')
	return appendDigits(buf, zone%60, 2)
}

// civilDate returns the proleptic Gregorian date of a count of days since
// 1970-01-01, by H. Hinnant's civil_from_days, exact for any day whose
// computation does not overflow (far beyond the years 1..9999 written).
func civilDate(days int64) (year, month, day int) {
	z := days + 719468 // days since 0000-03-01
	era := z / 146097
	if z%146097 < 0 {
		era--
	}
	doe := z - era*146097                                  // day of the 400-year era, 0..146096
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // year of the era, 0..399
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // day of the March-based year, 0..365
	mp := (5*doy + 2) / 153                                // March-based month, 0..11
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends the decimal digits of v >= 0, zero-padded to width.
func appendDigits(buf []byte, v, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 || width > 1 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	tmp[i] = byte('0' + v)
	return append(buf, tmp[i:]...)
}

// appendGUID appends the GUID s in its canonical lower-case 8-4-4-4-12 form.
func appendGUID(buf []byte, s string) ([]byte, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return buf, fmt.Errorf("want a GUID in 8-4-4-4-12 form, got %q", s)
	}
	return append(buf, u.String()...), nil
}

// sinkTime formats SinkCreatedOn/SinkModifiedOn, quoted.
func sinkTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, sinkLayout)
	return append(buf, '"')
}

// decodeValue is the inverse of encodeValue for one field as the record
// reader returns it (raw, quotes included).
func decodeValue(t schema.Type, raw string) (any, error) {
	if raw == "" {
		return nil, nil
	}
	s, quoted, err := unquote(raw)
	if err != nil {
		return nil, err
	}
	switch t {
	case schema.String, schema.JSON:
		if !quoted {
			return nil, fmt.Errorf("string field %q is not quoted", raw)
		}
		return s, nil
	case schema.Guid:
		if _, err := uuid.Parse(s); err != nil {
			return nil, fmt.Errorf("GUID field %q: %w", raw, err)
		}
		return s, nil
	case schema.Int64:
		return strconv.ParseInt(s, 10, 64)
	case schema.Boolean:
		switch s {
		case "True":
			return true, nil
		case "False":
			return false, nil
		}
		return nil, fmt.Errorf("boolean field %q is neither True nor False", raw)
	case schema.DateTime, schema.DateTimeOffset:
		if quoted {
			switch s {
			case "infinity":
				return schema.Infinity, nil
			case "-infinity":
				return schema.NegInfinity, nil
			}
		}
		return parseDateTime(s, t == schema.DateTimeOffset)
	case schema.Decimal:
		if !isDecimal(s) {
			return nil, fmt.Errorf("decimal field %q", raw)
		}
		return s, nil
	case schema.Double:
		switch s {
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return strconv.ParseFloat(s, 64)
	}
	return nil, fmt.Errorf("unknown column type %q", t)
}

// parseDateTime reads a dateTime (or, withOffset, a dateTimeOffset) field's
// text as encodeValue writes it, years outside 1..9999 included: the year
// is "-" and four digits or more below year 1 (ISO 8601's astronomical
// numbering, -0001 being 2 BC), and may have more than four digits above
// 9999, as time.Time.AppendFormat writes it and DuckDB reads it.
func parseDateTime(s string, withOffset bool) (time.Time, error) {
	layout := dateTimeLayout
	if withOffset {
		layout = dateTimeOffsetLayout
	}
	digits := s
	neg := strings.HasPrefix(s, "-")
	if neg {
		digits = s[1:]
	}
	n := skipDigits(digits)
	year, _ := strconv.Atoi(digits[:min(n, 7)])
	// The canonical form only: four digits, or more without a leading
	// zero; never "-0000".
	if n < 4 || n > 7 || n == len(digits) || n > 4 && digits[0] == '0' || neg && year == 0 {
		return time.Time{}, fmt.Errorf("date-time field %q is not in the lake's ISO 8601 form", s)
	}
	if neg {
		year = -year
	}
	if !neg && n == 4 {
		return time.Parse(layout, s)
	}
	// The rest parses in a leap year, then takes the real year: a
	// February 29 of a year without one does not survive time.Date's
	// normalisation, which the check below catches.
	rest, err := time.Parse(layout, "2000"+digits[n:])
	if err != nil {
		return time.Time{}, fmt.Errorf("date-time field %q: %w", s, err)
	}
	tm := time.Date(year, rest.Month(), rest.Day(), rest.Hour(), rest.Minute(), rest.Second(), rest.Nanosecond(), rest.Location())
	if tm.Day() != rest.Day() {
		return time.Time{}, fmt.Errorf("date-time field %q: day out of range", s)
	}
	return tm, nil
}

// unquote returns the text of a raw field and whether it was quoted.
func unquote(raw string) (string, bool, error) {
	if raw == "" || raw[0] != '"' {
		return raw, false, nil
	}
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", true, fmt.Errorf("field %.40q has an unterminated quote", raw)
	}
	return strings.ReplaceAll(raw[1:len(raw)-1], `""`, `"`), true, nil
}

// recordReader reads the lake's CSV records, keeping each field raw (quotes
// included). encoding/csv is not used because it cannot tell NULL (an empty
// field) from an empty string (""), and compaction must copy rows
// byte-exactly, including rows written under an older, shorter layout.
type recordReader struct {
	r      *bufio.Reader
	line   []byte
	fields []string
	// n counts records read, for error messages.
	n int64
}

func newRecordReader(r io.Reader) *recordReader {
	br := readerBufs.Get().(*bufio.Reader)
	br.Reset(r)
	return &recordReader{r: br}
}

// readerBufs recycles the readers' buffers: a compaction of a big table
// opens hundreds of files, each read through 256 KiB.
var readerBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 256<<10) }}

// release returns the reader's buffer for reuse; rr must not be used
// after. Readers that are not released are collected as any garbage.
func (rr *recordReader) release() {
	rr.r.Reset(nil)
	readerBufs.Put(rr.r)
	rr.r = nil
}

var errBadRecord = errors.New("malformed CSV record")

// next reads one record: its raw bytes without the line end, and its raw
// fields. Both are valid until the next call. It returns io.EOF at the end.
func (rr *recordReader) next() ([]byte, []string, error) {
	line, err := rr.nextLine()
	if err != nil {
		return nil, nil, err
	}
	fields, err := splitFields(rr.fields[:0], line)
	if err != nil {
		return nil, nil, fmt.Errorf("record %d: %w", rr.n, err)
	}
	rr.fields = fields
	return line, fields, nil
}

// quoteByte is the CSV quote, as a slice for bytes.Count.
var quoteByte = []byte{'"'}

// nextLine reads one record, its raw bytes without the line end, without
// splitting it into fields (fieldScanner does, for the fields a caller
// needs). The bytes are valid until the next call; a record that fits the
// reader's buffer is not copied. It returns io.EOF at the end.
func (rr *recordReader) nextLine() ([]byte, error) {
	rr.line = rr.line[:0]
	inQuote := false
	var line []byte
	for {
		chunk, err := rr.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return nil, err
		}
		// Count the quotes of every chunk, a full buffer's included, to
		// know whether a newline ends the record or sits inside a quoted
		// field.
		inQuote = inQuote != (bytes.Count(chunk, quoteByte)%2 == 1)
		if err == nil && !inQuote && len(rr.line) == 0 {
			line = chunk
			break
		}
		rr.line = append(rr.line, chunk...)
		if err == io.EOF {
			if len(rr.line) == 0 {
				return nil, io.EOF
			}
			if inQuote {
				return nil, fmt.Errorf("record %d: %w: unterminated quote at end of file", rr.n+1, errBadRecord)
			}
		}
		if err == io.EOF || err == nil && !inQuote {
			line = rr.line
			break
		}
	}
	rr.n++
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// splitFields splits a record into raw fields. A quoted field must be
// followed by a comma or the end of the record.
func splitFields(dst []string, line []byte) ([]string, error) {
	// One string for the whole record: the fields share it.
	s := string(line)
	sc := newFieldScanner(line)
	for sc.more() {
		start, end, err := sc.next()
		if err != nil {
			return nil, err
		}
		dst = append(dst, s[start:end])
	}
	return dst, nil
}

// fieldScanner walks the raw fields (quotes included) of one record, by
// the rules of the lake's CSV: a quoted field must be followed by a comma
// or the end of the record, and a bare field holds no quote. It allocates
// nothing, so that compaction can take the few fields it needs from every
// record of a table.
type fieldScanner struct {
	line []byte
	// pos is where the next field starts; past len(line) once the last
	// field was returned (a record of n commas has n+1 fields).
	pos int
}

func newFieldScanner(line []byte) fieldScanner {
	return fieldScanner{line: line}
}

// more reports whether a field is left.
func (sc *fieldScanner) more() bool { return sc.pos <= len(sc.line) }

// next returns the bounds of the next field in the record. more must be
// true.
func (sc *fieldScanner) next() (start, end int, err error) {
	line := sc.line
	start = sc.pos
	i := start
	if i < len(line) && line[i] == '"' {
		i++
		for {
			j := bytes.IndexByte(line[i:], '"')
			if j < 0 {
				return 0, 0, fmt.Errorf("%w: unterminated quote", errBadRecord)
			}
			i += j + 1
			if i < len(line) && line[i] == '"' {
				i++
				continue
			}
			break
		}
		if i < len(line) && line[i] != ',' {
			return 0, 0, fmt.Errorf("%w: text after a closing quote", errBadRecord)
		}
		sc.pos = i + 1
		return start, i, nil
	}
	// Bare fields are short (numbers, GUIDs, True/False): a byte loop is
	// three times faster over a typical row than searching twice with
	// bytes.IndexByte.
	for ; i < len(line); i++ {
		switch line[i] {
		case ',':
			sc.pos = i + 1
			return start, i, nil
		case '"':
			return 0, 0, fmt.Errorf("%w: quote inside a bare field", errBadRecord)
		}
	}
	sc.pos = i + 1
	return start, i, nil
}
