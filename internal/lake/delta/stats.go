package delta

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// IndexedColumns is how many leading columns of a file get min/max/null
// statistics: Delta's default delta.dataSkippingNumIndexedCols, which
// readers assume when the table does not set it.
const IndexedColumns = 32

// StringPrefix is how many characters of a string column's minimum the
// statistics keep, enough for a GUID Id (PROTOCOL.md, "Per-file Statistics": strings are cut off
// at a fixed prefix length). A maximum longer than that is left out rather
// than cut (a cut maximum would be below the values it bounds).
const StringPrefix = 64

// stats is the statistics struct of PROTOCOL.md, "Per-file Statistics".
// Bounds are tight: every value is one the file holds (timestamps cut down
// to the millisecond, strings to their prefix, as the protocol notes).
type stats struct {
	NumRecords int64                      `json:"numRecords"`
	MinValues  map[string]json.RawMessage `json:"minValues"`
	MaxValues  map[string]json.RawMessage `json:"maxValues"`
	NullCount  map[string]int64           `json:"nullCount"`
}

// Stats returns the JSON statistics of a data file holding rec: numRecords,
// and for the first IndexedColumns columns of the table's schema (the
// columns of rec named in indexed) nullCount and, where the column has a
// non-null value that JSON can carry exactly, minValues and maxValues.
// Booleans get no bounds; doubles none when NaN or an infinity is among
// their values; timestamps none when an infinite time is among them.
func Stats(rec arrow.RecordBatch, indexed []string) (string, error) {
	s := stats{NumRecords: rec.NumRows(), MinValues: map[string]json.RawMessage{}, MaxValues: map[string]json.RawMessage{}, NullCount: map[string]int64{}}
	sc := rec.Schema()
	for n, name := range indexed {
		if n >= IndexedColumns {
			break
		}
		idx := sc.FieldIndices(name)
		if len(idx) != 1 {
			return "", fmt.Errorf("delta: statistics: the file has %d columns named %s", len(idx), name)
		}
		col := rec.Column(idx[0])
		s.NullCount[name] = int64(col.NullN())
		lo, hi, err := bounds(col)
		if err != nil {
			return "", fmt.Errorf("delta: statistics of column %s: %w", name, err)
		}
		if lo != nil {
			s.MinValues[name] = lo
		}
		if hi != nil {
			s.MaxValues[name] = hi
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("delta: statistics: %w", err)
	}
	return string(b), nil
}

// statsTime formats a timestamp bound as Spark writes them, cut down to
// the millisecond.
const statsTime = "2006-01-02T15:04:05.000Z"

func jsonOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// bounds returns the JSON minimum and maximum of the non-null values of a,
// or nil where there are none to give.
func bounds(a arrow.Array) (lo, hi json.RawMessage, err error) {
	if a.Len() == a.NullN() {
		return nil, nil, nil
	}
	switch c := a.(type) {
	case *array.Int64:
		var mn, mx int64 = math.MaxInt64, math.MinInt64
		for i := 0; i < c.Len(); i++ {
			if c.IsValid(i) {
				mn, mx = min(mn, c.Value(i)), max(mx, c.Value(i))
			}
		}
		return jsonOf(mn), jsonOf(mx), nil
	case *array.Float64:
		mn, mx := math.Inf(1), math.Inf(-1)
		for i := 0; i < c.Len(); i++ {
			if !c.IsValid(i) {
				continue
			}
			v := c.Value(i)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, nil
			}
			mn, mx = min(mn, v), max(mx, v)
		}
		return jsonOf(mn), jsonOf(mx), nil
	case *array.String:
		first := true
		var mn, mx string
		for i := 0; i < c.Len(); i++ {
			if !c.IsValid(i) {
				continue
			}
			v := c.Value(i)
			if first || v < mn {
				mn = v
			}
			if first || v > mx {
				mx = v
			}
			first = false
		}
		lo = jsonOf(prefix(mn, StringPrefix))
		if utf8.RuneCountInString(mx) <= StringPrefix {
			hi = jsonOf(mx)
		}
		return lo, hi, nil
	case *array.Timestamp:
		var mn, mx int64 = math.MaxInt64, math.MinInt64
		for i := 0; i < c.Len(); i++ {
			if !c.IsValid(i) {
				continue
			}
			v := int64(c.Value(i))
			if v == math.MaxInt64 || v == -math.MaxInt64 {
				return nil, nil, nil
			}
			mn, mx = min(mn, v), max(mx, v)
		}
		lt, ht := time.UnixMicro(mn).UTC(), time.UnixMicro(mx).UTC()
		if lt.Year() < 1 || ht.Year() > 9999 {
			// Outside the years the stats format spells.
			return nil, nil, nil
		}
		return jsonOf(lt.Truncate(time.Millisecond).Format(statsTime)), jsonOf(ht.Truncate(time.Millisecond).Format(statsTime)), nil
	case *array.Decimal128:
		scale := c.DataType().(*arrow.Decimal128Type).Scale
		first := true
		var mn, mx decimal128.Num
		for i := 0; i < c.Len(); i++ {
			if !c.IsValid(i) {
				continue
			}
			v := c.Value(i)
			if first || v.Less(mn) {
				mn = v
			}
			if first || v.Greater(mx) {
				mx = v
			}
			first = false
		}
		return json.RawMessage(decimalText(mn, scale)), json.RawMessage(decimalText(mx, scale)), nil
	case *array.Boolean:
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("no statistics for Arrow type %s", a.DataType())
}

// prefix returns the first n characters of s.
func prefix(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// decimalText spells the unscaled n with scale digits after the point, a
// JSON number.
func decimalText(n decimal128.Num, scale int32) string {
	digits := n.BigInt().String()
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	if scale > 0 {
		if len(digits) <= int(scale) {
			digits = strings.Repeat("0", int(scale)-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-int(scale)] + "." + digits[len(digits)-int(scale):]
	}
	if neg {
		return "-" + digits
	}
	return digits
}
