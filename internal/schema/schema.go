// Package schema describes source tables the way every other package sees them:
// columns with their CDM data types, the record key, and the choice (option set)
// metadata the lake's OptionsetMetadata files and SQL joins need.
//
// Value representation. A row's values travel as map[string]any keyed by column
// name. Each CDM type has exactly one Go representation, and sources convert to it
// before a value leaves them, so that the lake never guesses:
//
//	Guid            string, canonical lower-case 8-4-4-4-12
//	String, JSON    string (JSON holds the raw JSON text)
//	Int64           int64
//	Boolean         bool
//	DateTime        time.Time (written in UTC), or an InfiniteTime
//	DateTimeOffset  time.Time (its offset is kept), or an InfiniteTime
//	Decimal         string, plain decimal notation ("-1234.50"), exact
//	Double          float64
//
// A nil value, or a column missing from the map, is NULL. Times lie within
// MinTime..MaxTime; years outside 1..9999 are fine (1 BC is year 0).
package schema

import (
	"math"
	"time"
)

// MinTime and MaxTime bound the finite DateTime and DateTimeOffset values:
// the range of the lake database's TIMESTAMP (DuckDB's), so that every value
// a source delivers reads back. MaxTime is exact to the microsecond.
var (
	MinTime = time.Date(-290308, 12, 22, 0, 0, 0, 0, time.UTC)
	MaxTime = time.UnixMicro(math.MaxInt64 - 1).UTC()
)

// TimeInRange reports whether t lies within MinTime..MaxTime, counting only
// its microseconds (the lake database keeps no more).
func TimeInRange(t time.Time) bool {
	return !t.Before(MinTime) && t.Before(MaxTime.Add(time.Microsecond))
}

// Type is a CDM data type, spelled as in model.json.
type Type string

// The CDM data types lakelink writes.
const (
	Guid           Type = "guid"
	String         Type = "string"
	Int64          Type = "int64"
	Boolean        Type = "boolean"
	DateTime       Type = "dateTime"
	DateTimeOffset Type = "dateTimeOffset"
	Decimal        Type = "decimal"
	Double         Type = "double"
	JSON           Type = "json"
)

// InfiniteTime is a DateTime or DateTimeOffset value after (Infinity) or
// before (NegInfinity) every time: PostgreSQL's 'infinity' and '-infinity'.
// The lake writes them as "infinity" and "-infinity", which the lake
// database reads as DuckDB's infinite timestamps.
type InfiniteTime int8

// The two infinite times.
const (
	Infinity    InfiniteTime = 1
	NegInfinity InfiniteTime = -1
)

// Column is one source column.
type Column struct {
	Name string
	Type Type
	// MaxLength bounds strings in characters; 0 means unbounded (nvarchar(max)).
	MaxLength int
	// Precision and Scale shape decimals; 0/0 means the lake default (38, 10).
	Precision int
	Scale     int
	// SourceType is the source's own type name (Dataverse AttributeType such as
	// "Picklist" or "Lookup"; a Postgres type such as "numeric(12,2)"), and
	// SourceTypeCode its numeric code where the source has one. Both feed the
	// lake's AttributeMetadata and are informational.
	SourceType     string
	SourceTypeCode int
	// Targets lists the tables a lookup column may reference.
	Targets []string
	// SourceID identifies the column within its table (Table.SourceID)
	// for the table's whole life, whatever it is named: PostgreSQL's
	// attnum. 0 means unknown (Dataverse, which cannot rename a column,
	// and descriptions committed before ids were recorded). Matching
	// descriptions by it (Renames) tells a renamed column from a dropped
	// and an added one.
	SourceID int `json:",omitempty"`
}

// Option is one value of a choice column with its label in one language.
type Option struct {
	Value    int
	Label    string
	Language int // LCID, e.g. 1033
	// UserLocalized is true when the label is a user-localized label.
	UserLocalized bool
}

// OptionSet holds the choices of one column. Global names the global option
// set the column uses, empty for a local one.
type OptionSet struct {
	Column  string
	Global  string
	Options []Option
}

// StatusOption is one statuscode value with the statecode it belongs to.
type StatusOption struct {
	State int
	Option
}

// Table describes a source table.
type Table struct {
	// Name is the logical name, lower case; it names the lake folder and the
	// SQL tables.
	Name string
	// SourceID identifies the table at the source for its life, so that
	// two descriptions with the same SourceID number their columns
	// (Column.SourceID) alike: PostgreSQL's table OID (a table dropped and
	// created again under the same name has another). Empty means unknown.
	SourceID string `json:",omitempty"`
	// Key names the column(s) whose value becomes the lake's Id. Several
	// columns form a composite key, written as their values joined by "|".
	Key []string
	// Columns in source order.
	Columns []Column
	// PartitionColumn is the timestamp column that chooses a row's Year/Month
	// partition ("createdon" for Dataverse); empty means one partition set.
	PartitionColumn string
	// AppendOnly is true when the source forces append-only mode
	// (Dataverse tables without createdon, many-to-many relationship tables).
	AppendOnly bool
	// Choice metadata, empty where the source has none.
	OptionSets []OptionSet
	States     []Option
	Statuses   []StatusOption
	// Renamed maps the columns renamed at the source since the description
	// the consumer last had (old name to new name, a chain of renames
	// already composed): a consumer keeps the column's data under its new
	// name instead of taking it for a dropped and an added column. It goes
	// with one delivery of the description and is never stored.
	Renamed map[string]string `json:"-"`
}

// Column returns the column named name, or false.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Renames returns the columns of prev that t holds under another name (old
// name to new), matched by their SourceIDs: the renames between two
// descriptions of one table, however they came about (#15 case 5). When
// the two have no common Table.SourceID it returns t.Renamed, the renames
// the source saw happen; otherwise the ids decide, and t.Renamed only adds
// renames of which one side lacks an id. A column whose id is new is an
// added column and one whose id is gone a dropped one, whatever the names.
func Renames(prev, t *Table) map[string]string {
	if prev == nil || prev.SourceID == "" || prev.SourceID != t.SourceID {
		return t.Renamed
	}
	byID := make(map[int]string, len(prev.Columns))
	for _, c := range prev.Columns {
		if c.SourceID != 0 {
			byID[c.SourceID] = c.Name
		}
	}
	var out map[string]string
	add := func(from, to string) {
		if out == nil {
			out = map[string]string{}
		}
		out[from] = to
	}
	for _, c := range t.Columns {
		if from, ok := byID[c.SourceID]; ok && c.SourceID != 0 && from != c.Name {
			add(from, c.Name)
		}
	}
	for from, to := range t.Renamed {
		p, okp := prev.Column(from)
		c, okc := t.Column(to)
		if okp && okc && (p.SourceID == 0 || c.SourceID == 0) {
			add(from, to)
		}
	}
	return out
}
