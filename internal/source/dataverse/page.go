package dataverse

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// lookupTypeAnnotation follows a lookup's wire name and carries the logical
// name of the table the lookup points at.
const lookupTypeAnnotation = "@Microsoft.Dynamics.CRM.lookuplogicalname"

// DecodeError reports a page the connector cannot turn into changes: a
// malformed body or a value that does not fit its column's type. It is not
// retried: the same page would fail again.
type DecodeError struct {
	Table  string
	Column string // empty when the page itself is malformed
	Value  string // the offending value, cut to 100 bytes
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("dataverse table %s: malformed page: %v", e.Table, e.Err)
	}
	return fmt.Sprintf("dataverse table %s, column %s: value %q: %v; the column's metadata and its data disagree: run `lakelink describe` on the table and report it", e.Table, e.Column, e.Value, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// field is one column of a table as the Web API spells it on the wire.
type field struct {
	schema.Column
	// wire is the JSON property holding the value: the logical name, or
	// _<name>_value for a lookup, or the lookup's lookuplogicalname
	// annotation for the lookup's EntityName companion (owneridtype).
	wire string
	// selectName is what $select names, empty when the column rides along
	// with another one (the EntityName companion).
	selectName string
}

// layout is how one table's rows are read.
type layout struct {
	table  string
	set    string // entity set name
	key    string // primary id attribute
	fields []field
	// byWire indexes fields by wire name.
	byWire map[string]int
	// cols names fields: the Columns every change read with this layout
	// (one $select set) shares (source.Change).
	cols []string
	// keyAt is the position of the key among fields, -1 when absent.
	keyAt int
}

func newLayout(table, set, key string, fields []field) *layout {
	l := &layout{table: table, set: set, key: key, fields: fields, byWire: make(map[string]int, len(fields)), cols: make([]string, len(fields)), keyAt: -1}
	for i, f := range fields {
		l.byWire[f.wire] = i
		l.cols[i] = f.Name
		if f.Name == key {
			l.keyAt = i
		}
	}
	return l
}

// page is one decoded page of a read.
type page struct {
	changes []source.Change
	next    string // @odata.nextLink, empty on the last page
	delta   string // @odata.deltaLink, set on the last page
	// maxVersion is the highest versionnumber among the page's rows.
	maxVersion int64

	// Within a page: a tombstone followed by a row of the same id is
	// superseded by it (the id was deleted and created again), and a
	// tombstone after a row of the same id orders after that row.
	rowVersion map[string]int64
	tombstone  map[string]int
	superseded map[int]bool
}

func newPage() *page {
	return &page{rowVersion: map[string]int64{}, tombstone: map[string]int{}, superseded: map[int]bool{}}
}

// add appends the page's next change.
func (p *page) add(c source.Change) {
	if c.Deleted {
		if v, ok := p.rowVersion[c.ID]; ok && v >= c.Version {
			c.Version = v + 1
		}
		p.tombstone[c.ID] = len(p.changes)
	} else {
		if i, ok := p.tombstone[c.ID]; ok {
			p.superseded[i] = true
		}
		p.rowVersion[c.ID] = c.Version
		p.maxVersion = max(p.maxVersion, c.Version)
	}
	p.changes = append(p.changes, c)
}

// finish drops superseded tombstones and checks the page is complete.
func (p *page) finish(table string) (*page, error) {
	if len(p.superseded) > 0 {
		kept := p.changes[:0]
		for i, c := range p.changes {
			if !p.superseded[i] {
				kept = append(kept, c)
			}
		}
		p.changes = kept
	}
	p.rowVersion, p.tombstone, p.superseded = nil, nil, nil
	if p.next == "" && p.delta == "" {
		return nil, &DecodeError{Table: table, Err: errors.New("the page has neither @odata.nextLink nor @odata.deltaLink: is change tracking (Prefer: odata.track-changes) honoured for this table?")}
	}
	return p, nil
}

// maxPageBytes bounds the body of one page (5000 wide rows stay far below).
const maxPageBytes = 1 << 30

// decodePage reads one page of a track-changes read from r. The page is
// held once as text; values are converted as they are scanned (strings
// share the page's text), so a page costs about its text plus its changes.
// deleteVersion is the Version given to deleted entities, which carry none
// on the wire (see stream.go for why it orders correctly).
//
// Pages of flat entities, which is what a $select read returns, go through
// a fast scanner; anything it does not handle (nested values, malformed
// JSON) is decoded again by encoding/json, which gives the same result or
// the precise syntax error. FuzzScanPage holds the two to the same answers.
func decodePage(r io.Reader, l *layout, deleteVersion int64) (*page, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPageBytes))
	if err != nil {
		return nil, &DecodeError{Table: l.table, Err: err}
	}
	text := string(b)
	p, err := scanPage(text, l, deleteVersion)
	if errors.Is(err, errFallback) {
		return decodePageSlow(strings.NewReader(text), l, deleteVersion)
	}
	return p, err
}

// decodePageSlow decodes a page with encoding/json, one entity at a time.
func decodePageSlow(r io.Reader, l *layout, deleteVersion int64) (*page, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	bad := func(err error) error { return &DecodeError{Table: l.table, Err: err} }
	if err := expectDelim(dec, '{'); err != nil {
		return nil, bad(err)
	}
	p := newPage()
	e := l.newEntity()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		key, _ := tok.(string)
		switch key {
		case "value":
			if err := expectDelim(dec, '['); err != nil {
				return nil, bad(err)
			}
			for dec.More() {
				var ent map[string]any
				if err := dec.Decode(&ent); err != nil {
					return nil, bad(err)
				}
				e.reset()
				for k, v := range ent {
					l.member(e, k, v)
				}
				c, err := l.change(e, deleteVersion)
				if err != nil {
					return nil, err
				}
				p.add(c)
			}
			if _, err := dec.Token(); err != nil {
				return nil, bad(err)
			}
		case "@odata.nextLink", "@odata.deltaLink":
			var s string
			if err := dec.Decode(&s); err != nil {
				return nil, bad(fmt.Errorf("%s: %w", key, err))
			}
			if key == "@odata.nextLink" {
				p.next = s
			} else {
				p.delta = s
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, bad(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad(err)
	}
	return p.finish(l.table)
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("expected %q, got %v", d, tok)
	}
	return nil
}

// entity holds the members of one entity the connector reads, as JSON
// values (string, json.Number, bool or nil).
type entity struct {
	vals    []any // by field index
	context string
	id      any
	version any
}

func (l *layout) newEntity() *entity { return &entity{vals: make([]any, len(l.fields))} }

func (e *entity) reset() {
	clear(e.vals)
	e.context, e.id, e.version = "", nil, nil
}

// member records member k of an entity.
func (l *layout) member(e *entity, k string, v any) {
	if i, ok := l.byWire[k]; ok {
		e.vals[i] = v
	}
	switch k {
	case "@odata.context":
		e.context, _ = v.(string)
	case "id":
		e.id = v
	case "versionnumber":
		e.version = v
	}
}

// change converts one entity of a page.
func (l *layout) change(e *entity, deleteVersion int64) (source.Change, error) {
	if strings.Contains(e.context, "$deletedEntity") {
		id, err := l.guid("id", e.id)
		if err != nil {
			return source.Change{}, err
		}
		return source.Change{Table: l.table, ID: id, Version: deleteVersion, Deleted: true}, nil
	}
	c := source.Change{Table: l.table, Columns: l.cols, Values: make([]any, len(l.fields))}
	for i, f := range l.fields {
		v, err := convert(f.Type, e.vals[i])
		if err != nil {
			return source.Change{}, &DecodeError{Table: l.table, Column: f.Name, Value: cut(e.vals[i]), Err: err}
		}
		c.Values[i] = v
	}
	var id string
	ok := false
	if l.keyAt >= 0 {
		id, ok = c.Values[l.keyAt].(string)
	}
	if !ok {
		return source.Change{}, &DecodeError{Table: l.table, Column: l.key, Value: "", Err: errors.New("the primary id is missing")}
	}
	c.ID = id
	v, err := convert(schema.Int64, e.version)
	if err != nil || v == nil {
		if err == nil {
			err = errors.New("versionnumber is missing: is it readable for this table?")
		}
		return source.Change{}, &DecodeError{Table: l.table, Column: "versionnumber", Value: cut(e.version), Err: err}
	}
	c.Version = v.(int64)
	return c, nil
}

func (l *layout) guid(column string, v any) (string, error) {
	g, err := convert(schema.Guid, v)
	if err == nil && g == nil {
		err = errors.New("missing")
	}
	if err != nil {
		return "", &DecodeError{Table: l.table, Column: column, Value: cut(v), Err: err}
	}
	return g.(string), nil
}

func cut(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// convert turns one JSON value (as json.Decoder with UseNumber yields it)
// into the Go representation package schema fixes for t. JSON null gives
// nil.
func convert(t schema.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case schema.Guid:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a GUID string, got %T", v)
		}
		u, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return nil, fmt.Errorf("not a GUID")
		}
		return u.String(), nil
	case schema.String, schema.JSON:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
		return nil, fmt.Errorf("want a string, got %T", v)
	case schema.Int64:
		n, err := number(v)
		if err != nil {
			return nil, err
		}
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not a 64-bit integer")
		}
		return i, nil
	case schema.Boolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want a boolean, got %T", v)
		}
		return b, nil
	case schema.DateTime, schema.DateTimeOffset:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a date string, got %T", v)
		}
		tm, err := parseTime(s)
		if err != nil {
			return nil, err
		}
		if t == schema.DateTime {
			tm = tm.UTC()
		}
		return tm, nil
	case schema.Decimal:
		n, err := number(v)
		if err != nil {
			return nil, err
		}
		return plainDecimal(n)
	case schema.Double:
		if s, ok := v.(string); ok {
			// OData spells the IEEE special values as strings.
			switch s {
			case "INF":
				return math.Inf(1), nil
			case "-INF":
				return math.Inf(-1), nil
			case "NaN":
				return math.NaN(), nil
			}
		}
		n, err := number(v)
		if err != nil {
			return nil, err
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number")
		}
		return f, nil
	}
	return nil, fmt.Errorf("unsupported column type %q", t)
}

// number accepts a JSON number or a numeric string (OData's
// IEEE754Compatible form) and returns its text.
func number(v any) (string, error) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), nil
	case string:
		return strings.TrimSpace(x), nil
	}
	return "", fmt.Errorf("want a number, got %T", v)
}

// parseTime reads the Web API's date-times ("2024-03-01T10:00:00Z") and
// date-only values ("2024-03-01", read as midnight UTC).
func parseTime(s string) (time.Time, error) {
	if len(s) == len("2006-01-02") {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("not a date")
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an ISO-8601 date-time")
	}
	return t, nil
}

// plainDecimal rewrites a JSON number in plain decimal notation, digit for
// digit: "1.5E+3" -> "1500", "-2.50" -> "-2.50", "1e-2" -> "0.01". It never
// goes through a float, so money keeps every digit.
func plainDecimal(s string) (string, error) {
	bad := fmt.Errorf("not a decimal number")
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 400 || e < -400 {
			return "", bad
		}
		mant, exp = s[:i], e
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	if intPart == "" && frac == "" || !digits(intPart) || !digits(frac) {
		return "", bad
	}
	if exp == 0 {
		return sign(neg, strings.TrimLeft(intPart, "0"), frac), nil
	}
	// Shift the decimal point by exp over all digits.
	all := intPart + frac
	point := len(intPart) + exp
	switch {
	case point <= 0:
		all = strings.Repeat("0", -point) + all
		point = 0
	case point > len(all):
		all += strings.Repeat("0", point-len(all))
	}
	return sign(neg, strings.TrimLeft(all[:point], "0"), all[point:]), nil
}

func sign(neg bool, intPart, frac string) string {
	if intPart == "" {
		intPart = "0"
	}
	s := intPart
	if frac != "" {
		s += "." + frac
	}
	if neg && strings.Trim(s, "0.") != "" {
		s = "-" + s
	}
	return s
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
