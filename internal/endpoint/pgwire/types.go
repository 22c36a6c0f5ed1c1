package pgwire

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lakelink/lakelink/internal/sqldb"
)

// field is a result column as PostgreSQL describes it.
type field struct {
	name   string
	oid    uint32
	typmod int32
	size   int16
	col    sqldb.Column
}

// fieldOf maps a DuckDB column to the PostgreSQL type clients decode it
// as. Types PostgreSQL lacks (unsigned integers, HUGEINT) widen to one
// that holds every value; nested types arrive as text (sqldb gives their
// DuckDB text).
func fieldOf(c sqldb.Column) field {
	f := field{name: c.Name, typmod: -1, col: c}
	f.oid, f.size = oidOf(c.Type)
	if c.Type == "DECIMAL" {
		// PostgreSQL's typmod of numeric(p,s).
		f.typmod = int32(c.Width<<16|c.Scale) + 4
	}
	return f
}

// oidOf is the PostgreSQL type of a DuckDB type name (sqldb.Column.Type)
// and its size (-1: variable).
func oidOf(duck string) (uint32, int16) {
	switch duck {
	case "BOOLEAN":
		return pgtype.BoolOID, 1
	case "TINYINT", "SMALLINT", "UTINYINT":
		return pgtype.Int2OID, 2
	case "INTEGER", "USMALLINT":
		return pgtype.Int4OID, 4
	case "BIGINT", "UINTEGER":
		return pgtype.Int8OID, 8
	case "UBIGINT", "HUGEINT", "UHUGEINT", "DECIMAL", "BIGNUM":
		return pgtype.NumericOID, -1
	case "FLOAT":
		return pgtype.Float4OID, 4
	case "DOUBLE":
		return pgtype.Float8OID, 8
	case "BLOB":
		return pgtype.ByteaOID, -1
	case "UUID":
		return pgtype.UUIDOID, 16
	case "DATE":
		return pgtype.DateOID, 4
	case "TIME":
		return pgtype.TimeOID, 8
	case "TIMETZ":
		return 1266, 12
	case "TIMESTAMP":
		return pgtype.TimestampOID, 8
	case "TIMESTAMPTZ":
		return pgtype.TimestamptzOID, 8
	case "INTERVAL":
		return pgtype.IntervalOID, 16
	case "JSON":
		return pgtype.JSONOID, -1
	}
	return pgtype.TextOID, -1
}

// DuckDB's infinite timestamps and dates as the Go driver returns them.
var (
	infTimestamp    = time.UnixMicro(math.MaxInt64)
	negInfTimestamp = time.UnixMicro(-math.MaxInt64)
	infDate         = time.Unix(math.MaxInt32*86400, 0)
	negInfDate      = time.Unix(-math.MaxInt32*86400, 0)
)

// infinity tells whether t is one of DuckDB's infinite values of type duck.
func infinity(t time.Time, duck string) pgtype.InfinityModifier {
	switch {
	case t.Equal(infTimestamp) || duck == "DATE" && t.Equal(infDate):
		return pgtype.Infinity
	case t.Equal(negInfTimestamp) || duck == "DATE" && t.Equal(negInfDate):
		return pgtype.NegativeInfinity
	}
	return pgtype.Finite
}

// appendText appends v (not NULL) in PostgreSQL's text output format.
func appendText(buf []byte, v any, f field) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return append(buf, v...), nil
	case bool:
		if v {
			return append(buf, 't'), nil
		}
		return append(buf, 'f'), nil
	case int8:
		return strconv.AppendInt(buf, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(buf, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(buf, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(buf, v, 10), nil
	case uint8:
		return strconv.AppendUint(buf, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(buf, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(buf, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(buf, v, 10), nil
	case *big.Int:
		return v.Append(buf, 10), nil
	case float32:
		return appendFloat(buf, float64(v), 32), nil
	case float64:
		return appendFloat(buf, v, 64), nil
	case duckdb.Decimal:
		return append(buf, decimalText(v.Value, int(v.Scale))...), nil
	case []byte:
		if f.col.Type == "UUID" && len(v) == 16 {
			return append(buf, uuid.UUID(v).String()...), nil
		}
		buf = append(buf, `\x`...)
		return hex.AppendEncode(buf, v), nil
	case duckdb.UUID:
		return append(buf, uuid.UUID(v).String()...), nil
	case time.Time:
		return appendTime(buf, v, f.col.Type), nil
	case duckdb.Interval:
		iv := pgtype.Interval{Months: v.Months, Days: v.Days, Microseconds: v.Micros, Valid: true}
		return typeMap.Encode(pgtype.IntervalOID, pgtype.TextFormatCode, iv, buf)
	}
	return fmt.Appendf(buf, "%v", v), nil
}

func appendFloat(buf []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...)
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, bits)
}

// decimalText is the exact text of value * 10^-scale.
func decimalText(value *big.Int, scale int) string {
	digits := new(big.Int).Abs(value).String()
	sign := ""
	if value.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// appendTime writes a date, time or timestamp as PostgreSQL prints it
// (ISO DateStyle, UTC): years before 1 as "<year> BC".
func appendTime(buf []byte, t time.Time, duck string) []byte {
	switch infinity(t, duck) {
	case pgtype.Infinity:
		return append(buf, "infinity"...)
	case pgtype.NegativeInfinity:
		return append(buf, "-infinity"...)
	}
	t = t.UTC()
	if duck == "TIME" {
		return t.AppendFormat(buf, "15:04:05.999999")
	}
	if duck == "TIMETZ" {
		return t.AppendFormat(buf, "15:04:05.999999-07")
	}
	bc := t.Year() <= 0
	if bc {
		// PostgreSQL counts 1 BC, 2 BC, ...; Go's year 0 is 1 BC.
		t = t.AddDate(1-2*t.Year(), 0, 0)
	}
	switch duck {
	case "DATE":
		buf = t.AppendFormat(buf, "2006-01-02")
	case "TIMESTAMPTZ":
		buf = t.AppendFormat(buf, "2006-01-02 15:04:05.999999-07")
	default:
		buf = t.AppendFormat(buf, "2006-01-02 15:04:05.999999")
	}
	if bc {
		buf = append(buf, " BC"...)
	}
	return buf
}

// typeMap encodes PostgreSQL's binary formats; it is safe for concurrent
// use once built (no types are registered after init).
var typeMap = pgtype.NewMap()

// appendBinary appends v (not NULL) in PostgreSQL's binary format of f.oid.
func appendBinary(buf []byte, v any, f field) ([]byte, error) {
	var val any
	switch v := v.(type) {
	case int8:
		val = int16(v)
	case uint8:
		val = int16(v)
	case uint16:
		val = int32(v)
	case uint32:
		val = int64(v)
	case uint64:
		val = pgtype.Numeric{Int: new(big.Int).SetUint64(v), Valid: true}
	case *big.Int:
		val = pgtype.Numeric{Int: v, Valid: true}
	case duckdb.Decimal:
		val = pgtype.Numeric{Int: v.Value, Exp: -int32(v.Scale), Valid: true}
	case []byte:
		if f.col.Type == "UUID" && len(v) == 16 {
			val = [16]byte(v)
		} else {
			val = v
		}
	case duckdb.UUID:
		val = [16]byte(v)
	case duckdb.Interval:
		val = pgtype.Interval{Months: v.Months, Days: v.Days, Microseconds: v.Micros, Valid: true}
	case time.Time:
		inf := infinity(v, f.col.Type)
		switch f.oid {
		case pgtype.DateOID:
			val = pgtype.Date{Time: v, InfinityModifier: inf, Valid: true}
		case pgtype.TimestampOID:
			val = pgtype.Timestamp{Time: v, InfinityModifier: inf, Valid: true}
		case pgtype.TimestamptzOID:
			val = pgtype.Timestamptz{Time: v, InfinityModifier: inf, Valid: true}
		case pgtype.TimeOID:
			val = pgtype.Time{Microseconds: int64(v.Hour())*3600e6 + int64(v.Minute())*60e6 + int64(v.Second())*1e6 + int64(v.Nanosecond()/1000), Valid: true}
		default:
			// timetz has no pgtype codec: its text is sent as text (see
			// resultFormat).
			return appendTime(buf, v, f.col.Type), nil
		}
	default:
		val = v
	}
	out, err := typeMap.Encode(f.oid, pgtype.BinaryFormatCode, val, buf)
	if err != nil {
		return nil, fmt.Errorf("encode a %s value of column %q for PostgreSQL's binary format: %w", f.col.Type, f.name, err)
	}
	return out, nil
}

// binaryOK reports whether f can be sent in binary format; other columns
// are always sent as text (a client that asked for binary reads the text
// of a text-typed column fine).
func binaryOK(f field) bool {
	_, ok := typeMap.TypeForOID(f.oid)
	return ok
}

// decodeParam turns a bound parameter into a value for DuckDB: text is
// passed as a string, DuckDB casts it to the parameter's type; binary is
// decoded by its PostgreSQL type.
func decodeParam(oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	if format == pgtype.TextFormatCode {
		return string(src), nil
	}
	t, ok := typeMap.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("a binary parameter of PostgreSQL type %d cannot be decoded: send it as text", oid)
	}
	v, err := t.Codec.DecodeValue(typeMap, oid, format, src)
	if err != nil {
		return nil, fmt.Errorf("decode a binary %s parameter: %w", t.Name, err)
	}
	switch v := v.(type) {
	case [16]byte:
		return uuid.UUID(v).String(), nil
	case pgtype.Numeric:
		b, err := v.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case time.Time:
		return v, nil
	case map[string]any, []any:
		// json, jsonb: DuckDB reads the document's text.
		return string(src), nil
	}
	return v, nil
}
