package lake

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lakelink/lakelink/internal/csvfield"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Names of the columns lakelink adds or places itself.
const (
	colID            = "Id"
	colSinkCreatedOn = "SinkCreatedOn"
	colSinkModified  = "SinkModifiedOn"
	colVersion       = "versionnumber"
	colCreatedOn     = "createdon"
	colModifiedOn    = "modifiedon"
	colIsDelete      = "IsDelete"
)

// Fixed positions of the system columns every layout starts with.
const (
	idxID           = 0
	idxSinkCreated  = 1
	idxSinkModified = 2
)

func fromSchema(c schema.Column) Column {
	return Column{Name: c.Name, Type: c.Type, MaxLength: c.MaxLength, Precision: c.Precision, Scale: c.Scale}
}

// newLayout returns the file column order of a new table:
//
//	Id, SinkCreatedOn, SinkModifiedOn, <source columns in source order>,
//	versionnumber, createdon, modifiedon, IsDelete
//
// where the source's own versionnumber is replaced by the change version and
// createdon/modifiedon move behind it as Synapse places them (only when the
// source has them). The key column(s) stay data columns, as Synapse keeps
// accountid next to Id.
func newLayout(t *schema.Table) ([]Column, error) {
	idType := schema.String
	if len(t.Key) == 1 {
		if c, ok := t.Column(t.Key[0]); ok && c.Type == schema.Guid {
			idType = schema.Guid
		}
	}
	cols := []Column{
		{Name: colID, Type: idType, System: true},
		{Name: colSinkCreatedOn, Type: schema.DateTime, System: true},
		{Name: colSinkModified, Type: schema.DateTime, System: true},
	}
	seen := map[string]bool{}
	for _, c := range t.Columns {
		if seen[c.Name] {
			return nil, &LayoutError{Table: t.Name, Column: c.Name, Problem: "the source lists the column twice"}
		}
		seen[c.Name] = true
		switch c.Name {
		case colID, colSinkCreatedOn, colSinkModified, colIsDelete:
			return nil, &LayoutError{Table: t.Name, Column: c.Name, Problem: "the name collides with a column lakelink adds"}
		case colVersion, colCreatedOn, colModifiedOn:
			continue
		}
		cols = append(cols, fromSchema(c))
	}
	cols = append(cols, Column{Name: colVersion, Type: schema.Int64, System: true})
	for _, name := range []string{colCreatedOn, colModifiedOn} {
		if c, ok := t.Column(name); ok {
			cols = append(cols, fromSchema(c))
		}
	}
	cols = append(cols, Column{Name: colIsDelete, Type: schema.Boolean, System: true})
	return cols, nil
}

// evolveLayout returns the layout of a table whose source schema changed
// from prev (the committed description) to t: renamed columns
// (schema.Renames: by column id, else as t.Renamed says) renamed in place,
// new columns appended, vanished ones marked Dropped, never reordered, so
// that rows written earlier stay valid (shorter rows have NULL tails). A
// rename keeps the column's position, so the files written before it
// (Synapse CSV is positional, model.json names the columns) read under the
// new name.
func evolveLayout(old []Column, prev, t *schema.Table) ([]Column, error) {
	renamed := schema.Renames(prev, t)
	cols := make([]Column, len(old))
	copy(cols, old)
	byName := make(map[string]int, len(cols))
	for i, c := range cols {
		byName[c.Name] = i
	}
	if len(renamed) > 0 {
		moved := map[int]string{}
		for from, to := range renamed {
			i, ok := byName[from]
			if !ok || cols[i].System {
				continue
			}
			if _, taken := byName[to]; taken && renamed[to] == "" {
				return nil, &LayoutError{Table: t.Name, Column: from, Problem: fmt.Sprintf("the column was renamed to %s, a name the lake's layout already has (a column dropped earlier)", to)}
			}
			moved[i] = to
		}
		for i := range moved {
			delete(byName, cols[i].Name)
		}
		for i, to := range moved {
			cols[i].Name = to
			byName[to] = i
		}
	}
	present := map[string]bool{}
	for _, sc := range t.Columns {
		if sc.Name == colVersion {
			continue
		}
		present[sc.Name] = true
		i, ok := byName[sc.Name]
		if !ok {
			cols = append(cols, fromSchema(sc))
			byName[sc.Name] = len(cols) - 1
			continue
		}
		c := cols[i]
		if c.System {
			return nil, &LayoutError{Table: t.Name, Column: sc.Name, Problem: "the name collides with a column lakelink adds"}
		}
		if c.Type != sc.Type {
			return nil, &LayoutError{Table: t.Name, Column: sc.Name, Problem: fmt.Sprintf("the type changed from %s to %s", c.Type, sc.Type)}
		}
		nc := fromSchema(sc)
		cols[i] = nc
	}
	for i, c := range cols {
		if !c.System && !present[c.Name] {
			cols[i].Dropped = true
		}
	}
	return cols, nil
}

// Kinds of the fields of a row, resolved once per commit (rowEncoder).
const (
	fieldValue = iota
	fieldID
	fieldSink
	fieldVersion
	fieldIsDelete
	// fieldEmpty is a dropped column: always NULL.
	fieldEmpty
)

type field struct {
	kind int
	typ  schema.Type
	name string
}

// rowEncoder encodes the rows of one table in one commit. What is the same
// for every row is worked out once: the field kind of each column and the
// formatted SinkCreatedOn/SinkModifiedOn, which is the commit time; and,
// since consecutive changes share their Columns slice (source.Change), the
// positions of the layout's columns in Values, once per distinct slice.
//
// resolve replaces the mapping it keeps: an encoder serves one goroutine,
// and others get their own by fork.
type rowEncoder struct {
	table  string
	fields []field
	sink   []byte
	index  map[string]int
	// last maps the Columns of the last change resolved; nil at first.
	last *rowMap
	// version is the text of versionnumber verValue (verLen bytes), kept
	// because consecutive changes often share it (every row of a Postgres
	// copy has the same). An array, not a slice, so that forks do not
	// share it.
	version  [20]byte
	verLen   int
	verValue int64
}

// rowMap maps one Columns slice to a layout. It is never modified once
// built, so that forks of an encoder may share it.
type rowMap struct {
	// cols is the slice the map is for, compared by identity (sameSlice).
	cols []string
	// pos holds, for each layout column, its position in Values, or -1
	// when cols lacks it (the value is NULL).
	pos []int
	// bad is the column that makes every change naming cols fail (one
	// the layout lacks, or one named twice), and why; "" when none.
	bad    string
	badErr error
}

// errUnknownColumn refuses a value of a column the layout does not have: it
// would be lost, and a source must announce new columns (Batch.Schemas).
var errUnknownColumn = errors.New("the column is not in the table's layout; the source must describe it first (Batch.Schemas)")

func newRowEncoder(table string, cols []Column, now time.Time) *rowEncoder {
	e := &rowEncoder{table: table, fields: make([]field, len(cols)), sink: sinkTime(nil, now), index: columnIndex(cols)}
	for i, c := range cols {
		f := field{kind: fieldValue, typ: c.Type, name: c.Name}
		switch {
		case i == idxID:
			f.kind = fieldID
		case i == idxSinkCreated || i == idxSinkModified:
			f.kind = fieldSink
		case c.System && c.Name == colVersion:
			f.kind = fieldVersion
		case c.System && c.Name == colIsDelete:
			f.kind = fieldIsDelete
		case c.Dropped:
			f.kind = fieldEmpty
		}
		e.fields[i] = f
	}
	return e
}

// fork returns an encoder of the same rows for another goroutine.
func (e *rowEncoder) fork() *rowEncoder {
	f := *e
	return &f
}

// newMap maps cols to the layout. Names of system and dropped columns are
// accepted and their values ignored, as the source's own versionnumber.
func (e *rowEncoder) newMap(cols []string) *rowMap {
	m := &rowMap{cols: cols, pos: make([]int, len(e.fields))}
	for i := range m.pos {
		m.pos[i] = -1
	}
	for j, name := range cols {
		i, ok := e.index[name]
		if !ok {
			m.bad, m.badErr = name, errUnknownColumn
			return m
		}
		if m.pos[i] >= 0 {
			m.bad, m.badErr = name, errors.New("the change names the column twice; the source connector must name each column once")
			return m
		}
		m.pos[i] = j
	}
	return m
}

// sameSlice reports whether a and b are the same slice: same backing array
// and length. Empty slices map alike whatever their array.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// resolve checks the shape of ch and returns the map of its Columns, kept
// for the changes that follow. It fails with a *ValueError when Values and
// Columns differ in length, or when Columns names a column the layout does
// not have (even on a delete) or names one twice. A delete without values
// needs no map: it returns nil.
func (e *rowEncoder) resolve(ch *source.Change) (*rowMap, error) {
	if ch.Deleted && ch.Values == nil {
		return nil, nil
	}
	if len(ch.Values) != len(ch.Columns) {
		return nil, &ValueError{Table: e.table, ID: ch.ID, Err: fmt.Errorf("the change has %d values for %d columns; the source connector must give one value per column", len(ch.Values), len(ch.Columns))}
	}
	if e.last == nil || !sameSlice(ch.Columns, e.last.cols) {
		e.last = e.newMap(ch.Columns)
	}
	if m := e.last; m.bad != "" {
		return nil, &ValueError{Table: e.table, Column: m.bad, ID: ch.ID, Err: m.badErr}
	}
	return e.last, nil
}

// encode appends the CSV record of ch, which resolve mapped to m. It fails
// with a *ValueError when a value does not fit its column.
func (e *rowEncoder) encode(buf []byte, ch *source.Change, m *rowMap) ([]byte, error) {
	var err error
	for i := range e.fields {
		f := &e.fields[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		switch f.kind {
		case fieldID:
			// The Id is a string; the common types are handled here so
			// that it is not boxed into an interface (an allocation)
			// for every row.
			switch f.typ {
			case schema.String:
				buf = csvfield.AppendQuoted(buf, ch.ID)
			case schema.Guid:
				buf, err = appendGUID(buf, ch.ID)
			default:
				buf, err = encodeValue(buf, f.typ, ch.ID)
			}
			if err != nil {
				return buf, &ValueError{Table: e.table, Column: colID, ID: ch.ID, Err: err}
			}
		case fieldSink:
			buf = append(buf, e.sink...)
		case fieldVersion:
			if e.verLen == 0 || ch.Version != e.verValue {
				e.verValue, e.verLen = ch.Version, len(strconv.AppendInt(e.version[:0], ch.Version, 10))
			}
			buf = append(buf, e.version[:e.verLen]...)
		case fieldIsDelete:
			if ch.Deleted {
				buf = append(buf, "True"...)
			}
		case fieldEmpty:
		default:
			if ch.Deleted {
				continue
			}
			j := m.pos[i]
			if j < 0 {
				continue
			}
			buf, err = encodeValue(buf, f.typ, ch.Values[j])
			if err != nil {
				return buf, &ValueError{Table: e.table, Column: f.name, ID: ch.ID, Err: err}
			}
		}
	}
	return append(buf, '\n'), nil
}

// value returns the value of layout column i in a change m maps, nil when
// it has none (m is nil for a delete).
func (m *rowMap) value(ch *source.Change, i int) any {
	if m == nil || i < 0 {
		return nil
	}
	if j := m.pos[i]; j >= 0 {
		return ch.Values[j]
	}
	return nil
}

func columnIndex(cols []Column) map[string]int {
	m := make(map[string]int, len(cols))
	for i, c := range cols {
		m[c.Name] = i
	}
	return m
}

// NoPartition names the partition of the rows that carry no partition
// value: the table has no partition column, the value is NULL or out of
// range, or the change is a delete (which has no values). It is Synapse's
// name for them, whatever the granularity: Synapse writes the rows of a
// table without createdon to <table>/1.csv, and Azure/dataverse-to-sql
// tells an unpartitioned table by its partition named "1". It is fixed, not
// the time of the commit, so that such a row's file does not depend on when
// it was written, and it sorts before every real partition.
const NoPartition = "1"

// partitioner names the partitions of the rows of one commit: from the
// partition column's value, or NoPartition. It keeps the last name it
// formatted, since consecutive rows mostly share a partition, so that
// naming one costs no allocation.
type partitioner struct {
	g Granularity
	// col is the layout position of the partition column, -1 for none.
	col     int
	none    string
	last    string
	lastKey int
}

// newPartitioner returns the partitioner of a table whose layout is cols
// and whose partition column is col ("" for none).
func newPartitioner(g Granularity, cols []Column, col string) *partitioner {
	p := &partitioner{g: g, col: -1, none: NoPartition, lastKey: -1}
	if col != "" {
		for i, c := range cols {
			if c.Name == col {
				p.col = i
			}
		}
	}
	return p
}

// of names the partition of ch, which m maps.
func (p *partitioner) of(m *rowMap, ch *source.Change) string {
	if p.col < 0 || ch.Deleted {
		return p.none
	}
	v, ok := m.value(ch, p.col).(time.Time)
	if !ok || v.Year() < 1 || v.Year() > 9999 {
		return p.none
	}
	v = v.UTC()
	y, mon, _ := v.Date()
	key := y * 100
	if p.g == Month {
		key += int(mon)
	}
	if key != p.lastKey {
		p.last, p.lastKey = partitionName(p.g, v), key
	}
	return p.last
}

func partitionName(g Granularity, t time.Time) string {
	if g == Month {
		return t.UTC().Format("2006-01")
	}
	return t.UTC().Format("2006")
}
