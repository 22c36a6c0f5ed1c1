package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

var t0 = time.Date(2024, 3, 15, 10, 0, 0, 0, time.UTC)

// clock is a pinned, manually advanced time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time         { return c.t }
func (c *clock) add(d time.Duration)    { c.t = c.t.Add(d) }
func newClock() *clock                  { return &clock{t: t0} }
func guid(n int) string                 { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }
func ctxT(t *testing.T) context.Context { return t.Context() }

// accountSchema is a small Dataverse-like table.
func accountSchema() *schema.Table {
	return &schema.Table{
		Name: "account",
		Key:  []string{"accountid"},
		Columns: []schema.Column{
			{Name: "accountid", Type: schema.Guid, SourceType: "Uniqueidentifier", SourceTypeCode: 15},
			{Name: "name", Type: schema.String, MaxLength: 160, SourceType: "String", SourceTypeCode: 14},
			{Name: "revenue", Type: schema.Decimal, Precision: 38, Scale: 2, SourceType: "Money", SourceTypeCode: 8},
			{Name: "statecode", Type: schema.Int64, SourceType: "State", SourceTypeCode: 19},
			{Name: "versionnumber", Type: schema.Int64, SourceType: "BigInt", SourceTypeCode: 18},
			{Name: "createdon", Type: schema.DateTime, SourceType: "DateTime", SourceTypeCode: 2},
			{Name: "modifiedon", Type: schema.DateTime, SourceType: "DateTime", SourceTypeCode: 2},
			{Name: "parentaccountid", Type: schema.Guid, SourceType: "Lookup", SourceTypeCode: 6, Targets: []string{"account"}},
		},
		PartitionColumn: "createdon",
		OptionSets: []schema.OptionSet{
			{Column: "industrycode", Global: "industry", Options: []schema.Option{{Value: 1, Label: "Accounting", Language: 1033}}},
			{Column: "customertypecode", Options: []schema.Option{{Value: 3, Label: "Customer \"big\"", Language: 1033, UserLocalized: true}}},
		},
		States:   []schema.Option{{Value: 0, Label: "Active", Language: 1033}, {Value: 1, Label: "Inactive", Language: 1033}},
		Statuses: []schema.StatusOption{{State: 0, Option: schema.Option{Value: 1, Label: "Active", Language: 1033}}},
	}
}

// accountCols names the values of account changes; they share it, as the
// changes a source decodes under one schema do.
var accountCols = []string{"accountid", "name", "revenue", "statecode", "createdon", "modifiedon"}

func account(n int, version int64, name string, created time.Time) source.Change {
	return source.Change{Table: "account", ID: guid(n), Version: version, Columns: accountCols, Values: []any{
		guid(n), name, fmt.Sprintf("%d.50", n), int64(0), created, created.Add(time.Duration(version) * time.Minute),
	}}
}

// encodeRow encodes ch alone, as encodeSegment does.
func encodeRow(e *rowEncoder, ch *source.Change) ([]byte, error) {
	m, err := e.resolve(ch)
	if err != nil {
		return nil, err
	}
	return e.encode(nil, ch, m)
}

// value returns ch's value of column name, nil when ch has none.
func value(ch source.Change, name string) any {
	if i := slices.Index(ch.Columns, name); i >= 0 {
		return ch.Values[i]
	}
	return nil
}

// setValue sets ch's value of column name, adding the column when ch lacks
// it; Columns is then copied, since changes share it.
func setValue(ch *source.Change, name string, v any) {
	if i := slices.Index(ch.Columns, name); i >= 0 {
		ch.Values[i] = v
		return
	}
	ch.Columns = append(slices.Clip(ch.Columns), name)
	ch.Values = append(ch.Values, v)
}

// dropValue removes column name from ch, copying Columns and Values.
func dropValue(ch *source.Change, name string) {
	if i := slices.Index(ch.Columns, name); i >= 0 {
		ch.Columns = slices.Delete(slices.Clone(ch.Columns), i, i+1)
		ch.Values = slices.Delete(slices.Clone(ch.Values), i, i+1)
	}
}

func del(table string, n int, version int64) source.Change {
	return source.Change{Table: table, ID: guid(n), Version: version, Deleted: true}
}

// row is a decoded lake row.
type row map[string]any

// readRows decodes every row of one object under layout cols.
func readRows(t *testing.T, st store.Store, path string, cols []Column) []row {
	t.Helper()
	r, err := st.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rr := newRecordReader(r)
	var out []row
	for {
		_, fields, err := rr.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(fields) > len(cols) {
			t.Fatalf("%s: row has %d fields, layout %d", path, len(fields), len(cols))
		}
		m := row{}
		for i, c := range cols {
			if i >= len(fields) || i == idxSinkCreated || i == idxSinkModified {
				continue
			}
			v, err := decodeValue(c.Type, fields[i])
			if err != nil {
				t.Fatalf("%s: column %s: %v", path, c.Name, err)
			}
			if v != nil {
				m[c.Name] = v
			}
		}
		out = append(out, m)
	}
}

// current is the merge-on-read view of an in-place table: latest version
// per Id over the files then the change files (later wins ties), deletes
// removed. It is the model the tests hold the lake to.
func current(t *testing.T, st store.Store, ts *TableState) map[string]row {
	t.Helper()
	out := map[string]row{}
	var files []File
	files = append(files, ts.Files...)
	files = append(files, ts.Changes...)
	for _, f := range files {
		for _, r := range readRows(t, st, f.Path, ts.Columns) {
			id := r[colID].(string)
			if old, ok := out[id]; ok && old[colVersion].(int64) > r[colVersion].(int64) {
				continue
			}
			out[id] = r
		}
	}
	for id, r := range out {
		if r[colIsDelete] == true {
			delete(out, id)
		}
	}
	return out
}

// readBack reads the state of the lake in st and fails t unless it is the
// writer's state want; it returns what it read.
func readBack(t *testing.T, st store.Store, want *State) *State {
	t.Helper()
	read, err := ReadState(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := stateJSON(t, read), stateJSON(t, want); got != w {
		t.Fatalf("ReadState differs from the writer's state:\n%s\nwant\n%s", got, w)
	}
	return read
}

func stateJSON(t *testing.T, s *State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b, _ = json.MarshalIndent(&back, "", " ")
	return string(b)
}

func newStore(t *testing.T) *local.Store {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustCommit(t *testing.T, l *Lake, tx Tx) *State {
	t.Helper()
	s, err := l.Commit(ctxT(t), tx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// csvOf returns the Synapse format of l.
func csvOf(l *Lake) *csvFormat { return l.f.(*csvFormat) }
