package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// A stored row (a record) is the version followed by one field per stored
// column, in the table's column order:
//
//	record = uvarint(version) field*
//	field  = uvarint(len) bytes
//
// A field holds the column's value as the JSON literal the Web API answers
// with, so serving a row is copying bytes, not formatting values; length 0
// is NULL (no JSON literal is empty). A lookup field is the target's
// logical name, a 0 byte, then the JSON string of the id. A record shorter
// than the table (a column added later) reads the missing columns as NULL.

const (
	dateTimeLayout = "2006-01-02T15:04:05Z"
	dateOnlyLayout = "2006-01-02"
)

func encodeRecord(buf []byte, version uint64, fields [][]byte) []byte {
	buf = binary.AppendUvarint(buf[:0], version)
	for _, f := range fields {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	return buf
}

var errCorrupt = errors.New("corrupt record")

// decodeRecord splits rec into fields; the fields alias rec.
func decodeRecord(rec []byte, fields [][]byte) (uint64, error) {
	version, n := binary.Uvarint(rec)
	if n <= 0 {
		return 0, errCorrupt
	}
	rec = rec[n:]
	for i := range fields {
		if len(rec) == 0 {
			fields[i] = nil
			continue
		}
		l, n := binary.Uvarint(rec)
		if n <= 0 || uint64(len(rec)-n) < l {
			return 0, errCorrupt
		}
		fields[i] = nil
		if l > 0 {
			fields[i] = rec[n : n+int(l)]
		}
		rec = rec[n+int(l):]
	}
	return version, nil
}

// recordVersion reads only the version of a record.
func recordVersion(rec []byte) uint64 {
	v, _ := binary.Uvarint(rec)
	return v
}

// splitLookup splits a stored lookup field into its target and JSON id.
func splitLookup(f []byte) (target string, id []byte) {
	i := bytes.IndexByte(f, 0)
	if i < 0 {
		return "", f
	}
	return string(f[:i]), f[i+1:]
}

func lookupField(target string, id uuid.UUID) []byte {
	b := make([]byte, 0, len(target)+40)
	b = append(b, target...)
	b = append(b, 0, '"')
	b = append(b, id.String()...)
	return append(b, '"')
}

func guidField(id uuid.UUID) []byte {
	b := make([]byte, 0, 38)
	b = append(b, '"')
	b = append(b, id.String()...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Unlike encoding/json it does
// not escape <, > and &, as the Web API does not.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// moneyField formats an amount given in hundredths.
func moneyField(cents int64) []byte {
	neg := cents < 0
	mag := uint64(cents)
	if neg {
		mag = -mag // two's complement: right for math.MinInt64 too
	}
	s := fmt.Sprintf("%d.%02d", mag/100, mag%100)
	if neg {
		s = "-" + s
	}
	return []byte(s)
}

// validation errors, worded as Dataverse words them.

func errLength(t *table, a *attribute) *apiError {
	return &apiError{http.StatusBadRequest, codeAttributeLength, fmt.Sprintf(
		"A validation error occurred. The length of the '%s' attribute of the '%s' entity exceeded the maximum allowed length of '%d'.",
		a.Name, t.Name, a.MaxLength)}
}

func errRange(t *table, a *attribute, v string) *apiError {
	return &apiError{http.StatusBadRequest, codeValueOutOfRange, fmt.Sprintf(
		"A validation error occurred. The value %s of '%s' on record of type '%s' is outside the valid range.", v, a.Name, t.Name)}
}

func errType(a *attribute, raw []byte, edm string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf(
		"Cannot convert the literal '%s' to the expected type '%s' of property '%s'.", strings.Trim(string(raw), `"`), edm, a.property)}
}

// fieldFromJSON validates a value a client sent for attribute a (not a
// lookup: those come through @odata.bind) and returns its stored field.
// A JSON null yields a nil field.
func fieldFromJSON(t *table, a *attribute, raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	switch a.Kind {
	case kString, kMemo:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errType(a, raw, "Edm.String")
		}
		if a.MaxLength > 0 && utf8.RuneCountInString(s) > a.MaxLength {
			return nil, errLength(t, a)
		}
		return appendJSONString(nil, s), nil
	case kInteger, kPicklist, kState, kStatus:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, errType(a, raw, "Edm.Int32")
		}
		if a.Options != nil {
			if !a.Options.has(int(n)) {
				return nil, errRange(t, a, string(raw))
			}
		} else if float64(n) < a.Min || float64(n) > a.Max {
			return nil, errRange(t, a, string(raw))
		}
		return []byte(strconv.FormatInt(n, 10)), nil
	case kMoney, kDecimal:
		// Range-check as a float first: big.Rat would expand an exponent
		// such as 1e999999999 into a number of that many digits.
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, errType(a, raw, "Edm.Decimal")
		}
		if f < a.Min || f > a.Max || math.IsInf(f, 0) {
			return nil, errRange(t, a, string(raw))
		}
		var r big.Rat
		if _, ok := r.SetString(string(raw)); !ok {
			return nil, errType(a, raw, "Edm.Decimal")
		}
		return []byte(r.FloatString(a.Precision)), nil
	case kDouble:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errType(a, raw, "Edm.Double")
		}
		if f < a.Min || f > a.Max {
			return nil, errRange(t, a, string(raw))
		}
		return strconv.AppendFloat(nil, f, 'f', -1, 64), nil
	case kBoolean:
		switch string(raw) {
		case "true", "false":
			return []byte(string(raw)), nil
		}
		return nil, errType(a, raw, "Edm.Boolean")
	case kDateTime, kDateOnly:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errType(a, raw, "Edm.DateTimeOffset")
		}
		tm, err := parseDate(s)
		if err != nil {
			return nil, errType(a, raw, "Edm.DateTimeOffset")
		}
		if a.Kind == kDateOnly {
			return appendJSONString(nil, tm.Format(dateOnlyLayout)), nil
		}
		return appendJSONString(nil, tm.UTC().Format(dateTimeLayout)), nil
	case kUniqueID:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errType(a, raw, "Edm.Guid")
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, errType(a, raw, "Edm.Guid")
		}
		return guidField(id), nil
	}
	return nil, errType(a, raw, "Edm.Untyped")
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", dateOnlyLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}
