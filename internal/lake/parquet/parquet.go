// Package parquet turns a table's rows, as the lake's layout describes them
// (lake.Column), into Arrow records and Parquet files with one exact type
// mapping, shared by the open table formats (Delta Lake, Iceberg; #12):
//
//	CDM type         Arrow / Parquet
//	guid             utf8 / BYTE_ARRAY STRING (canonical lower case)
//	string, json     utf8 / BYTE_ARRAY STRING
//	int64            int64 / INT64
//	boolean          bool / BOOLEAN
//	dateTime         timestamp[us, UTC] / INT64 TIMESTAMP(isAdjustedToUTC, MICROS)
//	dateTimeOffset   timestamp[us, UTC] (the instant; the offset is not kept)
//	decimal(p,s)     decimal128(p,s) / FIXED_LEN_BYTE_ARRAY DECIMAL(p,s); 0,0 is (38,10)
//	double           float64 / DOUBLE
//
// A value is written exactly or refused with a *lake.ValueError: a decimal
// with more digits than its column holds, a time outside schema.MinTime..
// MaxTime, a value of the wrong Go type. PostgreSQL's infinite times become
// the largest and smallest INT64 microseconds, which DuckDB reads as
// infinity and -infinity; a fraction finer than a microsecond is cut to
// the microsecond (the lake database reads CSV times so).
//
// The system columns are filled as the Synapse CSV format fills them: Id
// from the change's key, SinkCreatedOn and SinkModifiedOn with the commit
// time, versionnumber with the change version, IsDelete true for a delete
// and NULL otherwise, a dropped column NULL.
package parquet

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	apq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Names of the system columns (lake layout).
const (
	colID           = "Id"
	colSinkCreated  = "SinkCreatedOn"
	colSinkModified = "SinkModifiedOn"
	colVersion      = "versionnumber"
	colIsDelete     = "IsDelete"
)

// DecimalShape returns the precision and scale of a decimal column: the lake
// default (38,10) for 0,0. It fails for a shape Parquet's DECIMAL cannot
// hold (precision above 38, scale above precision).
func DecimalShape(c lake.Column) (p, s int32, err error) {
	p, s = int32(c.Precision), int32(c.Scale)
	if p <= 0 {
		p, s = 38, 10
	}
	if p > 38 || s < 0 || s > p {
		return 0, 0, fmt.Errorf("decimal(%d,%d) does not fit Parquet's DECIMAL (precision 1..38, scale 0..precision)", c.Precision, c.Scale)
	}
	return p, s, nil
}

// TimestampType is the Arrow type of dateTime and dateTimeOffset columns.
var TimestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// ArrowType returns the Arrow type of a lake column.
func ArrowType(c lake.Column) (arrow.DataType, error) {
	switch c.Type {
	case schema.Guid, schema.String, schema.JSON:
		return arrow.BinaryTypes.String, nil
	case schema.Int64:
		return arrow.PrimitiveTypes.Int64, nil
	case schema.Boolean:
		return arrow.FixedWidthTypes.Boolean, nil
	case schema.DateTime, schema.DateTimeOffset:
		return TimestampType, nil
	case schema.Double:
		return arrow.PrimitiveTypes.Float64, nil
	case schema.Decimal:
		p, s, err := DecimalShape(c)
		if err != nil {
			return nil, err
		}
		return &arrow.Decimal128Type{Precision: p, Scale: s}, nil
	}
	return nil, fmt.Errorf("unknown column type %q", c.Type)
}

// Schema returns the Arrow schema of rows of the layout cols: every column,
// nullable, under its physical name (Names).
func Schema(table string, cols []lake.Column) (*arrow.Schema, error) {
	names := lake.ColumnNames(cols)
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		t, err := ArrowType(c)
		if err != nil {
			return nil, &lake.LayoutError{Table: table, Column: c.Name, Problem: err.Error()}
		}
		fields[i] = arrow.Field{Name: names[i], Type: t, Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
}

// kinds of the columns of a Builder, resolved once.
const (
	kindValue = iota
	kindID
	kindSink
	kindVersion
	kindIsDelete
	kindDropped
)

// Builder accumulates rows of one table's layout into an Arrow record. It
// serves one goroutine.
type Builder struct {
	table  string
	cols   []lake.Column
	kinds  []int
	schema *arrow.Schema
	b      *array.RecordBuilder
	sink   arrow.Timestamp
	index  map[string]int
	// lastCols and lastPos map the Columns slice of the last change
	// (shared by consecutive changes, source.Change) to layout positions.
	lastCols []string
	lastPos  []int
	lastErr  error
	rows     int
}

// NewBuilder returns a builder of rows of table (layout cols) committed at
// now (the SinkCreatedOn and SinkModifiedOn of every row).
func NewBuilder(table string, cols []lake.Column, now time.Time) (*Builder, error) {
	sc, err := Schema(table, cols)
	if err != nil {
		return nil, err
	}
	b := &Builder{table: table, cols: cols, kinds: make([]int, len(cols)), schema: sc,
		b: array.NewRecordBuilder(memory.DefaultAllocator, sc), sink: arrow.Timestamp(now.UnixMicro()),
		index: make(map[string]int, len(cols))}
	for i, c := range cols {
		b.index[c.Name] = i
		k := kindValue
		switch {
		case c.System && c.Name == colID:
			k = kindID
		case c.System && (c.Name == colSinkCreated || c.Name == colSinkModified):
			k = kindSink
		case c.System && c.Name == colVersion:
			k = kindVersion
		case c.System && c.Name == colIsDelete:
			k = kindIsDelete
		case c.Dropped:
			k = kindDropped
		}
		b.kinds[i] = k
	}
	return b, nil
}

// Schema returns the schema of the records the builder makes.
func (b *Builder) Schema() *arrow.Schema { return b.schema }

// Rows returns how many rows were appended since the last Record.
func (b *Builder) Rows() int { return b.rows }

// errUnknownColumn refuses a value of a column the layout lacks.
var errUnknownColumn = errors.New("the column is not in the table's layout; the source must describe it first (Batch.Schemas)")

func (b *Builder) positions(ch *source.Change) ([]int, error) {
	if b.lastPos != nil && len(ch.Columns) == len(b.lastCols) && (len(ch.Columns) == 0 || &ch.Columns[0] == &b.lastCols[0]) {
		return b.lastPos, b.lastErr
	}
	pos := make([]int, len(b.cols))
	for i := range pos {
		pos[i] = -1
	}
	var err error
	for j, name := range ch.Columns {
		i, ok := b.index[name]
		if !ok {
			err = &lake.ValueError{Table: b.table, Column: name, ID: ch.ID, Err: errUnknownColumn}
			break
		}
		if pos[i] >= 0 {
			err = &lake.ValueError{Table: b.table, Column: name, ID: ch.ID, Err: errors.New("the change names the column twice; the source connector must name each column once")}
			break
		}
		pos[i] = j
	}
	b.lastCols, b.lastPos, b.lastErr = ch.Columns, pos, err
	return pos, err
}

// Check reports whether ch can be appended: its shape and every value fit
// the layout. Append makes the same checks; Check lets a caller refuse a
// whole batch before any row of it is added.
func (b *Builder) Check(ch *source.Change) error {
	if ch.Deleted && ch.Values == nil {
		return nil
	}
	if len(ch.Values) != len(ch.Columns) {
		return &lake.ValueError{Table: b.table, ID: ch.ID, Err: fmt.Errorf("the change has %d values for %d columns; the source connector must give one value per column", len(ch.Values), len(ch.Columns))}
	}
	pos, err := b.positions(ch)
	if err != nil {
		return err
	}
	if ch.Deleted {
		return nil
	}
	for i, k := range b.kinds {
		if k != kindValue || pos[i] < 0 {
			continue
		}
		if err := checkValue(b.cols[i], ch.Values[pos[i]]); err != nil {
			return &lake.ValueError{Table: b.table, Column: b.cols[i].Name, ID: ch.ID, Err: err}
		}
	}
	if b.kinds[0] == kindID && b.cols[0].Type == schema.Guid {
		if err := checkValue(b.cols[0], ch.ID); err != nil {
			return &lake.ValueError{Table: b.table, Column: colID, ID: ch.ID, Err: err}
		}
	}
	return nil
}

// Append adds the row of ch; it fails with a *lake.ValueError, adding
// nothing, when the change does not fit the layout.
func (b *Builder) Append(ch *source.Change) error {
	if err := b.Check(ch); err != nil {
		return err
	}
	var pos []int
	if !(ch.Deleted && ch.Values == nil) {
		pos, _ = b.positions(ch)
	}
	for i, k := range b.kinds {
		f := b.b.Field(i)
		switch k {
		case kindID:
			appendValue(f, b.cols[i], ch.ID)
		case kindSink:
			f.(*array.TimestampBuilder).Append(b.sink)
		case kindVersion:
			f.(*array.Int64Builder).Append(ch.Version)
		case kindIsDelete:
			if ch.Deleted {
				f.(*array.BooleanBuilder).Append(true)
			} else {
				f.AppendNull()
			}
		case kindDropped:
			f.AppendNull()
		default:
			if ch.Deleted || pos == nil || pos[i] < 0 {
				f.AppendNull()
				continue
			}
			appendValue(f, b.cols[i], ch.Values[pos[i]])
		}
	}
	b.rows++
	return nil
}

// Record returns the rows appended so far as one record and starts over.
// The caller releases it.
func (b *Builder) Record() arrow.RecordBatch {
	b.rows = 0
	return b.b.NewRecordBatch()
}

// Release frees the builder's memory.
func (b *Builder) Release() { b.b.Release() }

// Infinite times, as INT64 microseconds: DuckDB's infinity and -infinity.
const (
	infinityMicros    = math.MaxInt64
	negInfinityMicros = -math.MaxInt64
)

// Micros returns the microseconds of a dateTime or dateTimeOffset value
// since the Unix epoch (UTC), or why the lake cannot hold it.
func Micros(v any) (int64, error) {
	switch t := v.(type) {
	case schema.InfiniteTime:
		switch t {
		case schema.Infinity:
			return infinityMicros, nil
		case schema.NegInfinity:
			return negInfinityMicros, nil
		}
		return 0, fmt.Errorf("infinite time %d is neither Infinity nor NegInfinity", t)
	case time.Time:
		if !schema.TimeInRange(t) {
			return 0, fmt.Errorf("%s is outside the times the lake can hold (%s to %s UTC)",
				t.Format(time.RFC3339Nano), schema.MinTime.Format(time.RFC3339), schema.MaxTime.Format(time.RFC3339Nano))
		}
		// A finer fraction is cut to the microsecond, as the lake
		// database reads a CSV lake's 7-digit fractions.
		return t.Truncate(time.Microsecond).UnixMicro(), nil
	}
	return 0, fmt.Errorf("want a time.Time, got %T", v)
}

// Decimal parses a decimal in plain notation ("-1234.50") into the
// unscaled value of DECIMAL(p,s), exactly: fractional digits beyond s must
// be zeros, and the integer digits at most p-s.
func Decimal(v string, p, s int32) (decimal128.Num, error) {
	txt := v
	neg := false
	switch {
	case strings.HasPrefix(txt, "-"):
		neg, txt = true, txt[1:]
	case strings.HasPrefix(txt, "+"):
		txt = txt[1:]
	}
	intPart, frac, _ := strings.Cut(txt, ".")
	if intPart == "" && frac == "" || !digits(intPart) || !digits(frac) {
		return decimal128.Num{}, fmt.Errorf("want plain decimal notation, got %q", v)
	}
	if trimmed := strings.TrimRight(frac, "0"); len(trimmed) > int(s) {
		return decimal128.Num{}, fmt.Errorf("%s has more than %d fractional digits, the scale of its column decimal(%d,%d)", v, s, p, s)
	}
	if len(frac) > int(s) {
		frac = frac[:s]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > int(p-s) {
		return decimal128.Num{}, fmt.Errorf("%s has more than %d integer digits, what its column decimal(%d,%d) holds", v, p-s, p, s)
	}
	all := intPart + frac + strings.Repeat("0", int(s)-len(frac))
	n := new(big.Int)
	if all != "" {
		n.SetString(all, 10)
	}
	if neg {
		n.Neg(n)
	}
	return decimal128.FromBigInt(n), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkValue reports whether v fits column c.
func checkValue(c lake.Column, v any) error {
	if v == nil {
		return nil
	}
	switch c.Type {
	case schema.String, schema.JSON:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
	case schema.Guid:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a GUID string, got %T", v)
		}
		if !isGUID(s) {
			return fmt.Errorf("%q is not a GUID in canonical form (8-4-4-4-12 hex digits, lower case)", s)
		}
	case schema.Int64:
		switch v.(type) {
		case int64, int, int32:
		default:
			return fmt.Errorf("want an int64, got %T", v)
		}
	case schema.Boolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want a bool, got %T", v)
		}
	case schema.DateTime, schema.DateTimeOffset:
		_, err := Micros(v)
		return err
	case schema.Decimal:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a decimal string, got %T", v)
		}
		p, sc, err := DecimalShape(c)
		if err != nil {
			return err
		}
		_, err = Decimal(s, p, sc)
		return err
	case schema.Double:
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("want a float64, got %T", v)
		}
	default:
		return fmt.Errorf("unknown column type %q", c.Type)
	}
	return nil
}

// isGUID reports whether s is a GUID as sources deliver them: 8-4-4-4-12
// lower-case hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		ch := s[i]
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
				return false
			}
		}
	}
	return true
}

// appendValue appends v, which checkValue accepted, to f.
func appendValue(f array.Builder, c lake.Column, v any) {
	if v == nil {
		f.AppendNull()
		return
	}
	switch c.Type {
	case schema.Guid, schema.String, schema.JSON:
		f.(*array.StringBuilder).Append(v.(string))
	case schema.Int64:
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case int:
			n = int64(x)
		case int32:
			n = int64(x)
		}
		f.(*array.Int64Builder).Append(n)
	case schema.Boolean:
		f.(*array.BooleanBuilder).Append(v.(bool))
	case schema.DateTime, schema.DateTimeOffset:
		us, _ := Micros(v)
		f.(*array.TimestampBuilder).Append(arrow.Timestamp(us))
	case schema.Decimal:
		p, s, _ := DecimalShape(c)
		n, _ := Decimal(v.(string), p, s)
		f.(*array.Decimal128Builder).Append(n)
	case schema.Double:
		f.(*array.Float64Builder).Append(v.(float64))
	}
}

// WriterProperties are the Parquet settings of every data file: Snappy
// (what Spark, Fabric and DuckDB write and read by default), data page V1
// and format 2.6 (readable by every engine the formats name), statistics
// on, and row groups of at most RowGroupRows rows.
func WriterProperties() *apq.WriterProperties {
	return apq.NewWriterProperties(
		apq.WithCompression(compress.Codecs.Snappy),
		apq.WithDataPageVersion(apq.DataPageV1),
		apq.WithVersion(apq.V2_6),
		apq.WithStats(true),
		apq.WithMaxRowGroupLength(RowGroupRows),
		apq.WithCreatedBy("lakelink"),
	)
}

// RowGroupRows bounds the rows of one Parquet row group.
const RowGroupRows = 128 * 1024

// Encode writes records (of one schema) as one Parquet file and returns its
// bytes.
func Encode(sc *arrow.Schema, recs ...arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(sc, &buf, WriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(memory.DefaultAllocator)))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("parquet: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return buf.Bytes(), nil
}
