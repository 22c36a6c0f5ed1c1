package lake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store/local"
)

// Consumer re-implementations (#9 §2): each reads a lake lakelink wrote by
// the path-building and parsing rules of one public consumer of Synapse
// Link output (read in its source, not copied), as plain files, never
// through lakelink's reader, and must find exactly the records the
// workload left. docs/lake-format.md, "Consumer tests", lists them.

// wantRow is what a consumer must end with for one record.
type wantRow struct {
	version int64
	name    string
	deleted bool
}

// workload drives a lake through what every consumer test reads: an initial
// copy, then streamed inserts, updates and deletes over many rounds, a
// column added half-way (older rows stay narrower), values that need
// quoting (commas, quotes, CR LF), a table without a partition column
// whose rows and deletes share the fixed partition, and a stop of 40 minutes
// (incremental intervals without a folder).
type workload struct {
	t    *testing.T
	st   *local.Store
	c    *clock
	l    *Lake
	opts Options
	want map[string]map[string]wantRow
	// next is the next record number; version the last change version.
	next    int
	version int64
	evolved bool
	// history is want after each commit, with the commit's time: what a
	// consumer that selects rows by SinkModifiedOn may hold.
	history []wantAt
}

type wantAt struct {
	at   time.Time
	want map[string]map[string]wantRow
}

// commit commits tx and records the records it leaves.
func (w *workload) commit(tx Tx) {
	w.t.Helper()
	mustCommit(w.t, w.l, tx)
	snap := map[string]map[string]wantRow{}
	for table, rows := range w.want {
		snap[table] = maps.Clone(rows)
	}
	w.history = append(w.history, wantAt{w.c.now(), snap})
}

// stateAt returns the records of table after the last commit at or before
// t, its time truncated to the second as SinkModifiedOn is written.
func (w *workload) stateAt(table string, t time.Time) map[string]wantRow {
	var out map[string]wantRow
	for _, h := range w.history {
		if h.at.Truncate(time.Second).After(t) {
			break
		}
		out = h.want[table]
	}
	return out
}

const (
	linkTable   = "accountlink"
	workRounds  = 24
	evolveRound = 12
	gapRound    = 18
)

// linkSchema is a table without createdon, as Dataverse's many-to-many
// relationship tables are.
func linkSchema() *schema.Table {
	return &schema.Table{
		Name: linkTable,
		Key:  []string{"accountlinkid"},
		Columns: []schema.Column{
			{Name: "accountlinkid", Type: schema.Guid, SourceType: "Uniqueidentifier", SourceTypeCode: 15},
			{Name: "name", Type: schema.String, MaxLength: 100, SourceType: "String", SourceTypeCode: 14},
			{Name: "versionnumber", Type: schema.Int64, SourceType: "BigInt", SourceTypeCode: 18},
		},
	}
}

func evolvedAccount() *schema.Table {
	s := accountSchema()
	s.Columns = append(s.Columns, schema.Column{Name: "telephone1", Type: schema.String, MaxLength: 50, SourceType: "String", SourceTypeCode: 14})
	return s
}

// hostile is a name that needs quoting.
func hostile(n int, v int64) string {
	return fmt.Sprintf("n%d v%d, \"quoted\"\r\nsecond line", n, v)
}

func newWorkload(t *testing.T, opts Options) *workload {
	w := &workload{t: t, st: newStore(t), c: newClock(), want: map[string]map[string]wantRow{"account": {}, linkTable: {}}}
	opts.Link, opts.Now, opts.Grace = "test", w.c.now, time.Minute
	opts.MaxFileRows, opts.SnapshotInterval = 9, time.Minute
	w.opts = opts
	l, err := Open(ctxT(t), w.st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	w.l = l
	return w
}

func (w *workload) accountChange(n int) source.Change {
	w.version++
	created := time.Date(2022+n%3, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC)
	name := hostile(n, w.version)
	ch := account(n, w.version, name, created)
	if w.evolved {
		setValue(&ch, "telephone1", fmt.Sprintf("+1 555 %04d", n))
	}
	w.want["account"][guid(n)] = wantRow{version: w.version, name: name}
	return ch
}

func (w *workload) linkChange(n int) source.Change {
	w.version++
	name := hostile(n, w.version)
	w.want[linkTable][guid(n)] = wantRow{version: w.version, name: name}
	return source.Change{Table: linkTable, ID: guid(n), Version: w.version, Columns: []string{"accountlinkid", "name"}, Values: []any{guid(n), name}}
}

func (w *workload) delete(table string, n int) source.Change {
	w.version++
	w.want[table][guid(n)] = wantRow{version: w.version, deleted: true}
	return del(table, n, w.version)
}

// live lists the records of table not deleted, by number, sorted.
func (w *workload) live(table string) []int {
	var out []int
	for id, r := range w.want[table] {
		if !r.deleted {
			n, _ := strconv.Atoi(strings.TrimLeft(id[len("00000000-0000-0000-0000-"):], "0"))
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

func (w *workload) maintain() {
	w.t.Helper()
	if err := w.l.Maintain(ctxT(w.t)); err != nil {
		w.t.Fatal(err)
	}
}

// run commits the workload, calling consume after each round's Maintain,
// and settles: afterwards every incremental folder is finished and the
// newest snapshot holds the last commit.
func (w *workload) run(appendOnly bool, consume func(round int)) {
	t := w.t
	opts := TableOptions{AppendOnly: appendOnly}
	var accounts, links []source.Change
	for range 14 {
		w.next++
		accounts = append(accounts, w.accountChange(w.next))
		if w.next%3 == 0 {
			links = append(links, w.linkChange(w.next))
		}
	}
	w.commit(Tx{Tables: []TableTx{
		{Name: "account", Define: define(accountSchema(), opts), Changes: accounts[:7], Phase: InProgress},
		{Name: linkTable, Define: define(linkSchema(), opts), Changes: links, Phase: Completed},
	}})
	w.commit(Tx{Tables: []TableTx{{Name: "account", Changes: accounts[7:], Phase: Completed}}})
	w.maintain()
	consume(-1)
	for r := range workRounds {
		w.c.add(4 * time.Minute)
		if r == gapRound {
			// lakelink does not run for two intervals: they get no folder.
			w.c.add(40 * time.Minute)
		}
		txs := []TableTx{}
		var chs []source.Change
		if r == evolveRound {
			w.evolved = true
		}
		live := w.live("account")
		chs = append(chs, w.accountChange(live[r%len(live)]), w.accountChange(live[(r*5+1)%len(live)]))
		w.next++
		chs = append(chs, w.accountChange(w.next))
		if r%2 == 1 {
			chs = append(chs, w.delete("account", live[(r*3)%len(live)]))
		}
		tt := TableTx{Name: "account", Changes: chs}
		if r == evolveRound {
			tt.Define = define(evolvedAccount(), opts)
		}
		txs = append(txs, tt)
		if r%3 == 0 {
			w.next++
			lch := []source.Change{w.linkChange(w.next)}
			if ll := w.live(linkTable); len(ll) > 2 {
				lch = append(lch, w.delete(linkTable, ll[0]))
			}
			txs = append(txs, TableTx{Name: linkTable, Changes: lch})
		}
		w.commit(Tx{Tables: txs})
		w.maintain()
		consume(r)
	}
	if err := w.l.Settle(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	w.c.add(w.l.opts.Incremental.Interval + time.Minute)
	w.maintain()
	w.c.add(2 * time.Minute)
	w.maintain()
	consume(workRounds)
}

// check compares what a consumer ended with, per table, with the workload.
func (w *workload) check(consumer string, got map[string]map[string]wantRow) {
	w.t.Helper()
	for table, want := range w.want {
		w.checkTable(consumer, table, want, got[table])
	}
}

// checkTable compares a consumer's records of table with want.
func (w *workload) checkTable(consumer, table string, want, got map[string]wantRow) {
	w.t.Helper()
	n := 0
	for id, r := range want {
		g, ok := got[id]
		switch {
		case r.deleted && ok:
			w.t.Errorf("%s: %s %s was deleted at version %d, the consumer has it at %d", consumer, table, id, r.version, g.version)
		case r.deleted:
		case !ok:
			w.t.Errorf("%s: %s %s (version %d) is missing", consumer, table, id, r.version)
		case g.version != r.version || g.name != r.name:
			w.t.Errorf("%s: %s %s is version %d %q, want %d %q", consumer, table, id, g.version, g.name, r.version, r.name)
		default:
			n++
		}
	}
	if len(got) != n {
		w.t.Errorf("%s: %s has %d records, want %d", consumer, table, len(got), n)
	}
}

// csvField is one field as an RFC 4180 reader sees it.
type csvField struct {
	v      string
	quoted bool
}

// null reports an empty unquoted field: NULL to every consumer here.
func (f csvField) null() bool { return !f.quoted && f.v == "" }

// readCSV reads the file path and parses it with parseCSV, failing the test
// (the message led by who, the consumer) when either fails.
func readCSV(t *testing.T, who, path string) [][]csvField {
	t.Helper()
	at := path
	if who != "" {
		at = who + ": " + path
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	recs, err := parseCSV(data)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	return recs
}

// parseCSV is a strict RFC 4180 reader (comma, double quote, quotes doubled,
// records end in LF or CR LF outside quotes, line breaks kept inside them),
// as the consumers' CSV readers are configured; it is the tests' own, not
// lakelink's.
func parseCSV(data []byte) ([][]csvField, error) {
	var out [][]csvField
	s := string(data)
	for i := 0; i < len(s); {
		var rec []csvField
		for {
			var f csvField
			if i < len(s) && s[i] == '"' {
				f.quoted = true
				var b strings.Builder
				for i++; ; i++ {
					if i >= len(s) {
						return nil, fmt.Errorf("record %d: unterminated quote", len(out)+1)
					}
					if s[i] == '"' {
						if i+1 < len(s) && s[i+1] == '"' {
							b.WriteByte('"')
							i++
							continue
						}
						i++
						break
					}
					b.WriteByte(s[i])
				}
				f.v = b.String()
			} else {
				j := i
				for j < len(s) && s[j] != ',' && s[j] != '\n' && s[j] != '\r' {
					if s[j] == '"' {
						return nil, fmt.Errorf("record %d: quote inside an unquoted field", len(out)+1)
					}
					j++
				}
				f.v, i = s[i:j], j
			}
			rec = append(rec, f)
			if i < len(s) && s[i] == ',' {
				i++
				continue
			}
			switch {
			case i >= len(s):
			case strings.HasPrefix(s[i:], "\r\n"):
				i += 2
			case s[i] == '\n':
				i++
			default:
				return nil, fmt.Errorf("record %d: %q after a quoted field", len(out)+1, s[i])
			}
			break
		}
		out = append(out, rec)
	}
	return out, nil
}

// cdmAttr is an attribute of a model.json entity as the consumers decode it.
type cdmAttr struct {
	Name      string            `json:"name"`
	DataType  string            `json:"dataType"`
	MaxLength *int              `json:"maxLength"`
	Traits    []json.RawMessage `json:"traits"`
	CDMTraits []cdmTrait        `json:"cdm:traits"`
}

type cdmTrait struct {
	TraitReference string `json:"traitReference"`
	Arguments      []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"arguments"`
}

type cdmEntity struct {
	Type        string `json:"$type"`
	Name        string `json:"name"`
	Annotations []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"annotations"`
	Attributes []cdmAttr        `json:"attributes"`
	Partitions *json.RawMessage `json:"partitions"`
}

func readEntities(t *testing.T, path string, replaceCDM bool) ([]cdmEntity, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if replaceCDM {
		data = []byte(strings.ReplaceAll(string(data), "cdm:", ""))
	}
	var m struct {
		Entities []cdmEntity `json:"entities"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m.Entities, nil
}

func entityNamed(es []cdmEntity, name string) *cdmEntity {
	for i := range es {
		if es[i].Name == name {
			return &es[i]
		}
	}
	return nil
}

func attrIndex(e *cdmEntity, name string) int {
	return slices.IndexFunc(e.Attributes, func(a cdmAttr) bool { return a.Name == name })
}

// fastTrack re-implements the Dynamics 365 FastTrack serverless-SQL scripts
// for Synapse Link with incremental-update folders
// (EDL_To_SynapseLinkDV_DBSetup/Step1_EDL_To_SynapseLinkDV_CreateUpdate_SetupScript.sql,
// incremental CSV mode):
//   - metadata (source_GetCdmMetadata, source_GetSQLMetadataFromCDM): the root
//     model.json is read whole, "cdm:" removed; per entity and attribute the
//     SQL type comes from dataType (guid nvarchar(100), string nvarchar(n)
//     below 8000 else max, int64 bigint, dateTime and dateTimeOffset
//     datetime2, boolean bit, double real, decimal(p,s) from
//     $.traits[0].arguments[0] and [1]; any other dataType is taken as the
//     SQL type name);
//   - one view per table, OPENROWSET(BULK '*/<table>/*.csv', FORMAT='CSV')
//     WITH (<attributes in model.json order>): header-less, columns by
//     position, DataLakeModified_DateTime = cast(replace(filepath(1), '.',
//     ':') as datetime2), the folder's start;
//   - GlobalOptionsetMetadata view: */OptionsetMetadata/GlobalOptionsetMetadata.csv
//     with 8 columns, only the folder whose name is the first field of
//     Changelog/changelog.info;
//   - source_GetNewDataToCopy: new folders are those whose */model.json lists
//     an entity with partitions other than [] and whose name sorts after the
//     last marker (yyyy-MM-ddTHH.mm.ssZ); the new marker is the newest such
//     folder (now when there is none); a table's rows are those whose
//     datetime_markercolumn is between its last marker and the new one
//     (both ends included); a table never copied starts at 1900-01-01;
//   - datetime_markercolumn: target_GetSetSQLMetadata's default is
//     SinkModifiedOn; the pipeline template that runs these procedures
//     (Administration/Analytics/DataverseLink/DataIntegration/DVLinkToSQL_IncrementalCopy.zip,
//     activity Target_GetSetSQLMetadata) passes DataLakeModified_DateTime
//     when IncrementalCSV is set. Both are run here;
//   - target merge: the batch keeps the row of the highest versionnumber
//     per Id; an Id whose kept row has IsDelete = 1 is deleted from the
//     target; the others are inserted, or update the target row when its
//     versionnumber is lower.
type fastTrack struct {
	t      *testing.T
	root   string
	now    func() time.Time
	marker map[string]time.Time
	target map[string]map[string]wantRow
	// markerColumn is datetime_markercolumn: markerFolder or markerSink.
	markerColumn string
}

const (
	markerFolder = "DataLakeModified_DateTime"
	markerSink   = "SinkModifiedOn"
)

var ft1900 = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// sqlType is source_GetSQLMetadataFromCDM's type of a.
func sqlType(a cdmAttr) (string, error) {
	switch strings.ToLower(a.DataType) {
	case "guid":
		return "nvarchar(100)", nil
	case "string":
		if a.MaxLength == nil || *a.MaxLength >= 8000 || *a.MaxLength < 1 {
			return "nvarchar(max)", nil
		}
		return fmt.Sprintf("nvarchar(%d)", *a.MaxLength), nil
	case "int64":
		return "bigint", nil
	case "datetime", "datetimeoffset":
		return "datetime2", nil
	case "boolean":
		return "bit", nil
	case "double":
		return "real", nil
	case "decimal":
		// precision int '$.traits[0].arguments[0].value', scale [1].
		if len(a.Traits) == 0 {
			return "", fmt.Errorf("decimal %s has no traits: decimal(,) is no SQL type", a.Name)
		}
		var tr cdmTrait
		if err := json.Unmarshal(a.Traits[0], &tr); err != nil || len(tr.Arguments) < 2 {
			return "", fmt.Errorf("decimal %s: traits[0] has no two arguments: %s", a.Name, a.Traits[0])
		}
		p, okP := tr.Arguments[0].Value.(float64)
		s, okS := tr.Arguments[1].Value.(float64)
		if !okP || !okS || p < 1 || p > 38 || s < 0 || s > p {
			return "", fmt.Errorf("decimal %s: traits[0] arguments %v are no precision and scale", a.Name, tr.Arguments)
		}
		return fmt.Sprintf("decimal(%d,%d)", int(p), int(s)), nil
	}
	return "", fmt.Errorf("attribute %s: dataType %q is no SQL type", a.Name, a.DataType)
}

// sqlConvert converts a CSV field to SQL type typ as OPENROWSET does, or
// fails as the query would.
func sqlConvert(typ string, f csvField) error {
	if f.null() {
		return nil
	}
	v := f.v
	switch {
	case strings.HasPrefix(typ, "nvarchar("):
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(typ, "nvarchar("), ")")); err == nil && utf8.RuneCountInString(v) > n {
			return fmt.Errorf("%q is longer than %s", v, typ)
		}
	case typ == "bigint":
		_, err := strconv.ParseInt(v, 10, 64)
		return err
	case typ == "bit":
		if v != "True" && v != "False" && v != "1" && v != "0" {
			return fmt.Errorf("%q is no bit", v)
		}
	case typ == "real":
		x, err := strconv.ParseFloat(v, 32)
		if err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
			return fmt.Errorf("%q: SQL Server's real holds no NaN or infinity", v)
		}
		return err
	case typ == "datetime2":
		for _, layout := range []string{"1/2/2006 3:04:05 PM", "2006-01-02T15:04:05.9999999Z07:00", "2006-01-02T15:04:05.9999999"} {
			if tm, err := time.Parse(layout, v); err == nil && tm.Year() >= 1 && tm.Year() <= 9999 {
				return nil
			}
		}
		return fmt.Errorf("%q is no datetime2", v)
	case strings.HasPrefix(typ, "decimal("):
		var p, s int
		fmt.Sscanf(typ, "decimal(%d,%d)", &p, &s)
		r, ok := new(big.Rat).SetString(v)
		if !ok {
			return fmt.Errorf("%q is no decimal", v)
		}
		whole := new(big.Int).Quo(r.Num(), r.Denom())
		if len(whole.Abs(whole).String()) > p-s {
			return fmt.Errorf("%q overflows %s", v, typ)
		}
	}
	return nil
}

func folderTime(name string) (time.Time, bool) {
	tm, err := time.Parse(time.RFC3339, strings.ReplaceAll(name, ".", ":"))
	return tm, err == nil
}

// run is one pipeline run: metadata, new folders, copy, merge.
func (f *fastTrack) run() {
	t := f.t
	t.Helper()
	entities, err := readEntities(t, filepath.Join(f.root, modelName), true)
	if err != nil {
		t.Fatalf("fasttrack: reading the root model.json: %v", err)
	}
	f.checkOptionsets()
	last := ft1900
	for _, m := range f.marker {
		if m.After(last) {
			last = m
		}
	}
	dirs, err := os.ReadDir(f.root)
	if err != nil {
		t.Fatal(err)
	}
	var maxFolder string
	inNew := map[string]bool{}
	for _, d := range dirs {
		if !d.IsDir() || d.Name() <= last.Format(folderLayout) {
			continue
		}
		es, err := readEntities(t, filepath.Join(f.root, d.Name(), modelName), false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("fasttrack: openjson of %s/model.json: %v", d.Name(), err)
		}
		for _, e := range es {
			if e.Partitions != nil && string(*e.Partitions) != "[]" && string(*e.Partitions) != "null" {
				inNew[e.Name] = true
				maxFolder = max(maxFolder, d.Name())
			}
		}
	}
	newMarker := f.now().UTC()
	if maxFolder != "" {
		tm, ok := folderTime(maxFolder)
		if !ok {
			t.Fatalf("fasttrack: convert(datetime2, %q) fails", maxFolder)
		}
		newMarker = tm
	}
	for _, e := range entities {
		if _, known := f.marker[e.Name]; known && !inNew[e.Name] {
			continue
		}
		from, ok := f.marker[e.Name]
		if !ok {
			from = ft1900
		}
		f.copyTable(&e, dirs, from, newMarker)
		f.marker[e.Name] = newMarker
	}
}

// copyTable reads the table's view between two markers and merges it.
func (f *fastTrack) copyTable(e *cdmEntity, dirs []os.DirEntry, from, to time.Time) {
	t := f.t
	t.Helper()
	types := make([]string, len(e.Attributes))
	for i, a := range e.Attributes {
		typ, err := sqlType(a)
		if err != nil {
			t.Fatalf("fasttrack: view %s: %v", e.Name, err)
		}
		types[i] = typ
	}
	id, ver, del, name := attrIndex(e, "Id"), attrIndex(e, "versionnumber"), attrIndex(e, "IsDelete"), attrIndex(e, "name")
	sinkMod := attrIndex(e, markerSink)
	batch := map[string]wantRow{}
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(f.root, d.Name(), e.Name, "*.csv"))
		if err != nil || len(files) == 0 {
			continue
		}
		ft, ok := folderTime(d.Name())
		if !ok {
			t.Fatalf("fasttrack: view %s: cast(replace(%q, '.', ':') as datetime2) fails", e.Name, d.Name())
		}
		if f.markerColumn == markerFolder && (ft.Before(from) || ft.After(to)) {
			continue
		}
		for _, file := range files {
			recs := readCSV(t, "fasttrack", file)
			for k, rec := range recs {
				if len(rec) > len(types) {
					t.Fatalf("fasttrack: %s record %d has %d fields, the view %d columns", file, k+1, len(rec), len(types))
				}
				for c, fl := range rec {
					if err := sqlConvert(types[c], fl); err != nil {
						t.Fatalf("fasttrack: %s record %d column %s: %v", file, k+1, e.Attributes[c].Name, err)
					}
				}
				if f.markerColumn == markerSink {
					tm, err := time.Parse("1/2/2006 3:04:05 PM", rec[sinkMod].v)
					if err != nil {
						t.Fatalf("fasttrack: %s record %d: SinkModifiedOn: %v", file, k+1, err)
					}
					if tm.Before(from) || tm.After(to) {
						continue
					}
				}
				v, _ := strconv.ParseInt(rec[ver].v, 10, 64)
				r := wantRow{version: v, deleted: len(rec) > del && (rec[del].v == "True" || rec[del].v == "1")}
				if !r.deleted {
					r.name = rec[name].v
				}
				if old, ok := batch[rec[id].v]; !ok || old.version < v {
					batch[rec[id].v] = r
				}
			}
		}
	}
	tgt := f.target[e.Name]
	if tgt == nil {
		tgt = map[string]wantRow{}
		f.target[e.Name] = tgt
	}
	for k, r := range batch {
		switch old, ok := tgt[k]; {
		case r.deleted:
			delete(tgt, k)
		case !ok || old.version < r.version:
			tgt[k] = r
		}
	}
}

// checkOptionsets reads the GlobalOptionsetMetadata view: the folder
// changelog.info names must hold the file, with 8 typed columns.
func (f *fastTrack) checkOptionsets() {
	t := f.t
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.root, changelogName))
	if err != nil {
		t.Fatalf("fasttrack: changelog view: %v", err)
	}
	recs, err := parseCSV(data)
	if err != nil || len(recs) == 0 {
		t.Fatalf("fasttrack: changelog.info %q: %v", data, err)
	}
	folder := recs[0][0].v
	data, err = os.ReadFile(filepath.Join(f.root, folder, optionsetDir, "GlobalOptionsetMetadata.csv"))
	if err != nil {
		t.Fatalf("fasttrack: GlobalOptionsetMetadata of the folder changelog.info names: %v", err)
	}
	recs, err = parseCSV(data)
	if err != nil {
		t.Fatalf("fasttrack: GlobalOptionsetMetadata.csv: %v", err)
	}
	types := []string{"nvarchar(max)", "bigint", "bit", "bigint", "nvarchar(max)", "nvarchar(max)", "nvarchar(max)", "nvarchar(max)"}
	english := 0
	for k, rec := range recs {
		if len(rec) != len(types) {
			t.Fatalf("fasttrack: GlobalOptionsetMetadata.csv record %d has %d fields, want 8", k+1, len(rec))
		}
		for c, fl := range rec {
			if err := sqlConvert(types[c], fl); err != nil {
				t.Fatalf("fasttrack: GlobalOptionsetMetadata.csv record %d column %d: %v", k+1, c+1, err)
			}
		}
		if rec[3].v == "1033" && rec[6].v == "account" && rec[0].v == "industrycode" && rec[5].v == "industry" {
			english++
		}
	}
	if english == 0 {
		t.Fatalf("fasttrack: source_GetEnumTranslation finds no English option of account.industrycode in %q", data)
	}
}

// TestConsumerFastTrack: the FastTrack serverless-SQL pipeline over a lake
// in incremental-update folder mode, run after every round while lakelink
// streams inserts, updates and deletes. With DataLakeModified_DateTime as
// its marker (what the pipeline template passes in incremental CSV mode)
// it ends with exactly the source's records. With SinkModifiedOn (the
// procedures' default) a run reads only the rows written up to the start
// of the newest finished folder, so after every run each table holds
// exactly the records as of its marker, from Synapse Link as from
// lakelink: the rest follows once a later folder holds the table.
func TestConsumerFastTrack(t *testing.T) {
	for _, column := range []string{markerFolder, markerSink} {
		t.Run(column, func(t *testing.T) {
			w := newWorkload(t, Options{Incremental: Incremental{Enabled: true, Interval: 15 * time.Minute}})
			f := &fastTrack{t: t, root: w.st.Root(), now: w.c.now, marker: map[string]time.Time{}, target: map[string]map[string]wantRow{}, markerColumn: column}
			run := func() {
				f.run()
				if column != markerSink {
					return
				}
				for table, m := range f.marker {
					w.checkTable(fmt.Sprintf("fasttrack by %s, marker %s", column, m.Format(time.RFC3339)), table, w.stateAt(table, m), f.target[table])
				}
			}
			w.run(true, func(round int) {
				// The pipeline's first run needs a finished folder: with
				// none it takes now as its marker and never reads the
				// folder being written, from Synapse Link as from lakelink.
				if round >= 4 {
					run()
				} else {
					f.checkOptionsets()
				}
			})
			run()
			if column == markerFolder {
				w.check("fasttrack by "+column, f.target)
			}
		})
	}
}

// estuary re-implements Estuary's Dynamics 365 Finance and Operations
// capture (estuary/connectors source-dynamics-365-finance-and-operations,
// api.py and models.py):
//   - tables are the entities of the root model.json (each an object with
//     $type, name and attributes of name, dataType, integer maxLength);
//   - timestamp folders are the root folders whose name, dots made colons,
//     is an ISO 8601 time; Changelog/changelog.info, read whole and not
//     trimmed, is the folder in progress; only older folders are read, in
//     time order, each once (the cursor is the last folder read);
//   - in a folder, every *.csv under <folder>/<table>/ (recursively); the
//     schema is the folder model.json's entity of that exact name (the
//     <table>-model.json under Microsoft.Athena.TrickleFeedService/ when the
//     folder's lists others); it must have a boolean IsDelete;
//   - CSVs in modification-time order; a file is upserts or deletes by its
//     first row, and every row of it must be of that kind; upsert files are
//     read first, delete files after;
//   - rows bind by position: at most as wide as the schema, at least up to
//     IsDelete, never narrower than an earlier row of the file; a folder's
//     schema must start with the previous folder's (columns only appended);
//   - values have the formats of the sourced schema (estuaryFormat);
//   - documents reduce last-write-wins by Id; a delete removes it.
type estuary struct {
	t       *testing.T
	root    string
	cursor  map[string]string
	history map[string][]string
	docs    map[string]map[string]wantRow
}

func (e *estuary) sweep() {
	t := e.t
	t.Helper()
	tables, err := readEntities(t, filepath.Join(e.root, modelName), false)
	if err != nil {
		t.Fatalf("estuary: discovery: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(e.root, changelogName))
	if err != nil {
		t.Fatalf("estuary: %v", err)
	}
	inProgress, ok := folderTime(string(data))
	if !ok {
		t.Fatalf("estuary: changelog.info %q is no ISO 8601 time (fromisoformat)", data)
	}
	// The folder in progress exists, its model.json empty of entities
	// until it is finished.
	if es, err := readEntities(t, filepath.Join(e.root, string(data), modelName), false); err != nil || len(es) != 0 {
		t.Fatalf("estuary: the folder in progress %s: model.json has %d entities: %v", data, len(es), err)
	}
	dirs, err := os.ReadDir(e.root)
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, d := range dirs {
		if tm, ok := folderTime(d.Name()); d.IsDir() && ok && tm.Before(inProgress) {
			folders = append(folders, d.Name())
		}
	}
	sort.Slice(folders, func(i, j int) bool {
		a, _ := folderTime(folders[i])
		b, _ := folderTime(folders[j])
		return a.Before(b)
	})
	for _, tb := range tables {
		if tb.Type != "LocalEntity" || tb.Name == "" {
			t.Fatalf("estuary: model.json entity %+v", tb)
		}
		for _, a := range tb.Attributes {
			if a.Name == "" || a.DataType == "" {
				t.Fatalf("estuary: %s: attribute %+v", tb.Name, a)
			}
		}
		for _, folder := range folders {
			if folder <= e.cursor[tb.Name] {
				continue
			}
			e.readFolder(folder, tb.Name)
			e.cursor[tb.Name] = folder
		}
	}
}

func (e *estuary) readFolder(folder, table string) {
	t := e.t
	t.Helper()
	type csvFile struct {
		path string
		mod  time.Time
	}
	var csvs []csvFile
	err := filepath.WalkDir(filepath.Join(e.root, folder, table), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		csvs = append(csvs, csvFile{p, info.ModTime()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(csvs) == 0 {
		return
	}
	es, err := readEntities(t, filepath.Join(e.root, folder, modelName), false)
	if err != nil || len(es) == 0 {
		t.Fatalf("estuary: folder %s has %s data but no usable model.json: %v", folder, table, err)
	}
	ent := entityNamed(es, table)
	if ent == nil {
		es, err = readEntities(t, filepath.Join(e.root, folder, trickleDir, table+"-model.json"), false)
		if ent = entityNamed(es, table); err != nil || ent == nil {
			t.Fatalf("estuary: folder %s: no schema of %s: %v", folder, table, err)
		}
	}
	del := attrIndex(ent, "IsDelete")
	if del < 0 || ent.Attributes[del].DataType != "boolean" {
		t.Fatalf("estuary: %s in %s has no boolean IsDelete", table, folder)
	}
	var fields []string
	for _, a := range ent.Attributes {
		fields = append(fields, a.Name)
	}
	prev := e.history[table]
	appendOnly := prev == nil || len(fields) >= len(prev) && slices.Equal(fields[:len(prev)], prev)
	e.history[table] = fields
	id, ver, name := attrIndex(ent, "Id"), attrIndex(ent, "versionnumber"), attrIndex(ent, "name")
	sort.SliceStable(csvs, func(i, j int) bool { return csvs[i].mod.Before(csvs[j].mod) })
	docs := e.docs[table]
	if docs == nil {
		docs = map[string]wantRow{}
		e.docs[table] = docs
	}
	for _, pass := range []bool{false, true} {
		for _, f := range csvs {
			recs := readCSV(t, "estuary", f.path)
			if len(recs) == 0 {
				continue
			}
			isDel := func(rec []csvField) bool { return strings.EqualFold(rec[del].v, "true") }
			if len(recs[0]) <= del {
				t.Fatalf("estuary: %s row 1 has %d columns, every row reaches IsDelete (%d)", f.path, len(recs[0]), del+1)
			}
			if isDel(recs[0]) != pass {
				continue
			}
			widest := 0
			for k, rec := range recs {
				switch {
				case len(rec) < widest:
					t.Fatalf("estuary: %s row %d has %d columns after a row of %d", f.path, k+1, len(rec), widest)
				case len(rec) > len(fields) || len(rec) <= del:
					t.Fatalf("estuary: %s row %d has %d columns, the schema %d (IsDelete at %d)", f.path, k+1, len(rec), len(fields), del+1)
				case len(rec) < len(fields) && !appendOnly:
					t.Fatalf("estuary: %s row %d is narrow while the schema changed other than by appending", f.path, k+1)
				case isDel(rec) != pass:
					t.Fatalf("estuary: %s mixes deletes and upserts (row %d): each CSV must hold only one kind", f.path, k+1)
				}
				widest = len(rec)
				for c, fl := range rec {
					if err := estuaryFormat(ent.Attributes[c], fl); err != nil {
						t.Fatalf("estuary: %s row %d column %s: %v", f.path, k+1, ent.Attributes[c].Name, err)
					}
				}
				if pass {
					delete(docs, rec[id].v)
					continue
				}
				v, _ := strconv.ParseInt(rec[ver].v, 10, 64)
				docs[rec[id].v] = wantRow{version: v, name: rec[name].v}
			}
		}
	}
}

// estuaryFormat checks a value against the capture's sourced schema
// (models.py, tests/test_sourced_schemas.py): guid a 36-character UUID,
// int64 and decimal numeric strings, SinkCreatedOn and SinkModifiedOn
// "M/d/yyyy h:mm:ss AM/PM" of 19 to 22 characters, other dateTime values
// ISO 8601 date-times with 7 fractional digits (28 characters),
// dateTimeOffset ones with an offset (33 characters), booleans True or
// False; other types (double) have no format.
func estuaryFormat(a cdmAttr, f csvField) error {
	if f.null() {
		return nil
	}
	v := f.v
	switch a.DataType {
	case "guid":
		if len(v) != 36 || strings.Count(v, "-") != 4 || strings.Trim(v, "0123456789abcdefABCDEF-") != "" {
			return fmt.Errorf("%q is no uuid", v)
		}
	case "int64":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return err
		}
	case "decimal":
		if _, ok := new(big.Rat).SetString(v); !ok {
			return fmt.Errorf("%q is no number", v)
		}
	case "dateTime":
		layout, lo, hi := "2006-01-02T15:04:05.0000000Z", 28, 28
		if a.Name == "SinkCreatedOn" || a.Name == "SinkModifiedOn" {
			layout, lo, hi = "1/2/2006 3:04:05 PM", 19, 22
		}
		if _, err := time.Parse(layout, v); err != nil || len(v) < lo || len(v) > hi {
			return fmt.Errorf("%q is not a Synapse %s", v, a.DataType)
		}
	case "dateTimeOffset":
		if _, err := time.Parse("2006-01-02T15:04:05.0000000-07:00", v); err != nil || len(v) != 33 {
			return fmt.Errorf("%q is not a Synapse %s", v, a.DataType)
		}
	case "boolean":
		if v != "True" && v != "False" {
			return fmt.Errorf("%q is no boolean", v)
		}
	}
	return nil
}

// TestConsumerEstuary: Estuary's capture, sweeping after every round of an
// incremental-update folder lake, ends with exactly the source's records.
func TestConsumerEstuary(t *testing.T) {
	w := newWorkload(t, Options{Incremental: Incremental{Enabled: true, Interval: 15 * time.Minute}})
	e := &estuary{t: t, root: w.st.Root(), cursor: map[string]string{}, history: map[string][]string{}, docs: map[string]map[string]wantRow{}}
	w.run(true, func(int) { e.sweep() })
	w.check("estuary", e.docs)
}

// sparkCSV re-implements the Spark notebooks that read Synapse Link CSVs:
// Azure/dataverse-to-sql's DataverseToSql_ProcessEntity notebook, and the
// model.json-driven reading of the Fabric and Synapse notebook samples:
//   - the schema is the attributes of the entity (Microsoft.Athena.TrickleFeedService/<table>-model.json,
//     entities[0]): boolean, dateTime (read as string, then to_timestamp
//     with "M/d/y h:m:s a", "y-M-d'T'H:m:s.SSSSSSSXXXXX", "y-M-d'T'H:m:sX",
//     "y-M-d'T'H:m:s.SSSSSSS", "y-M-d'T'H:m:s", the first that parses),
//     decimal(precision, scale) from the cdm:traits trait
//     is.dataFormat.numeric.shaped's arguments named so, double, guid,
//     int64, string; any other dataType raises;
//   - spark.read.schema(...).option("mode", "PERMISSIVE"),
//     option("multiline", True), option("header", False),
//     option("escape", '"').csv(files): a value that does not parse as its
//     type silently becomes NULL, so here it fails the test;
//   - files: dataverse-to-sql reads <table>/<partition name>.csv per
//     partition of the model (initial load) and every <table>/*.csv it
//     finds later (incremental load), so all of <table>/*.csv; a CDM
//     reader of the root model.json reads each partition's location of the
//     Completed entities;
//   - the latest row per Id by SinkModifiedOn, then versionnumber,
//     descending; rows whose IsDelete is true are dropped.
type sparkCSV struct {
	t    *testing.T
	root string
}

var sparkTimeLayouts = []string{"1/2/2006 3:04:05 PM", "2006-01-02T15:04:05.0000000Z07:00", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.0000000", "2006-01-02T15:04:05"}

// sparkValue checks that a field parses as the Spark type of a.
func sparkValue(a cdmAttr, f csvField) (time.Time, error) {
	if f.null() {
		return time.Time{}, nil
	}
	v := f.v
	switch a.DataType {
	case "boolean":
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return time.Time{}, fmt.Errorf("%q is no boolean", v)
		}
	case "dateTime":
		for _, l := range sparkTimeLayouts {
			if tm, err := time.Parse(l, v); err == nil {
				return tm, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q matches none of the notebook's timestamp formats", v)
	case "decimal":
		var p, s int
		for _, tr := range a.CDMTraits {
			if tr.TraitReference == "is.dataFormat.numeric.shaped" {
				for _, arg := range tr.Arguments {
					n, _ := arg.Value.(float64)
					switch arg.Name {
					case "precision":
						p = int(n)
					case "scale":
						s = int(n)
					}
				}
			}
		}
		r, ok := new(big.Rat).SetString(v)
		if p < 1 || !ok {
			return time.Time{}, fmt.Errorf("%q as decimal(%d,%d)", v, p, s)
		}
		whole := new(big.Int).Quo(r.Num(), r.Denom())
		if len(whole.Abs(whole).String()) > p-s {
			return time.Time{}, fmt.Errorf("%q overflows decimal(%d,%d)", v, p, s)
		}
	case "double":
		_, err := strconv.ParseFloat(v, 64)
		return time.Time{}, err
	case "int64":
		_, err := strconv.ParseInt(v, 10, 64)
		return time.Time{}, err
	case "guid", "string":
	case "dateTimeOffset":
		// The column's type is the target table's datetimeoffset
		// (the notebook takes the target's type for every column it
		// has but dateTime ones), which Spark's SQL Server dialect reads
		// as a string; SQL Server converts it on the load
		// (dvToSQLOutcome).
	default:
		return time.Time{}, fmt.Errorf("unsupported CDM data type: %s", a.DataType)
	}
	return time.Time{}, nil
}

// read reads files of table by entity ent and returns the latest live row
// per Id.
func (s *sparkCSV) read(ent *cdmEntity, files []string) map[string]wantRow {
	t := s.t
	t.Helper()
	type latest struct {
		sink time.Time
		row  wantRow
	}
	id, ver, del, name, sinkMod := attrIndex(ent, "Id"), attrIndex(ent, "versionnumber"), attrIndex(ent, "IsDelete"), attrIndex(ent, "name"), attrIndex(ent, "SinkModifiedOn")
	by := map[string]latest{}
	for _, file := range files {
		recs := readCSV(t, "spark", file)
		for k, rec := range recs {
			if len(rec) > len(ent.Attributes) {
				t.Fatalf("spark: %s record %d: %d fields for %d columns", file, k+1, len(rec), len(ent.Attributes))
			}
			var sink time.Time
			for c, fl := range rec {
				tm, err := sparkValue(ent.Attributes[c], fl)
				if err != nil {
					t.Fatalf("spark: %s record %d column %s: %v (PERMISSIVE makes it NULL)", file, k+1, ent.Attributes[c].Name, err)
				}
				if c == sinkMod {
					sink = tm
				}
			}
			v, _ := strconv.ParseInt(rec[ver].v, 10, 64)
			r := wantRow{version: v, deleted: len(rec) > del && strings.EqualFold(rec[del].v, "true")}
			if !r.deleted {
				r.name = rec[name].v
			}
			if old, ok := by[rec[id].v]; !ok || sink.After(old.sink) || sink.Equal(old.sink) && v > old.row.version {
				by[rec[id].v] = latest{sink, r}
			}
		}
	}
	out := map[string]wantRow{}
	for k, l := range by {
		if !l.row.deleted {
			out[k] = l.row
		}
	}
	return out
}

// tableFiles reads every table as dataverse-to-sql does: its own model's
// attributes, all of <table>/*.csv.
func (s *sparkCSV) tableFiles(tables []string) map[string]map[string]wantRow {
	out := map[string]map[string]wantRow{}
	for _, table := range tables {
		es, err := readEntities(s.t, filepath.Join(s.root, trickleDir, table+"-model.json"), false)
		if err != nil || len(es) == 0 {
			s.t.Fatalf("spark: %s-model.json: %v", table, err)
		}
		files, err := filepath.Glob(filepath.Join(s.root, table, "*.csv"))
		if err != nil {
			s.t.Fatal(err)
		}
		out[table] = s.read(&es[0], files)
	}
	return out
}

// modelLocations reads every Completed entity of the root model.json from
// its partitions' locations.
func (s *sparkCSV) modelLocations() map[string]map[string]wantRow {
	t := s.t
	es, err := readEntities(t, filepath.Join(s.root, modelName), false)
	if err != nil {
		t.Fatalf("cdm: %v", err)
	}
	out := map[string]map[string]wantRow{}
	for i := range es {
		e := &es[i]
		if !slices.ContainsFunc(e.Annotations, func(a struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		}) bool {
			return a.Name == "Athena:InitialSyncState" && a.Value == "Completed"
		}) {
			continue
		}
		var parts []struct{ Name, Location string }
		if e.Partitions != nil {
			if err := json.Unmarshal(*e.Partitions, &parts); err != nil {
				t.Fatalf("cdm: %s partitions: %v", e.Name, err)
			}
		}
		var files []string
		for _, p := range parts {
			path, ok := strings.CutPrefix(p.Location, "file://")
			if !ok {
				t.Fatalf("cdm: %s partition %s location %q is no file URI", e.Name, p.Name, p.Location)
			}
			files = append(files, path)
		}
		out[e.Name] = s.read(e, files)
	}
	return out
}

// TestConsumerSparkNotebook: the Spark notebooks' reading of in-place and
// append-only lakes, after lakelink streamed inserts, updates, deletes and
// a new column, finds exactly the source's records, both in <table>/*.csv
// (dataverse-to-sql) and through the root model.json's locations (CDM
// readers).
func TestConsumerSparkNotebook(t *testing.T) {
	for _, appendOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("append-only=%v", appendOnly), func(t *testing.T) {
			w := newWorkload(t, Options{})
			s := &sparkCSV{t: t, root: w.st.Root()}
			w.run(appendOnly, func(round int) {
				if round >= 0 && round < workRounds {
					// Mid-stream, every file must already parse.
					s.tableFiles([]string{"account", linkTable})
				}
			})
			w.check("spark <table>/*.csv", s.tableFiles([]string{"account", linkTable}))
			w.check("spark model.json locations", s.modelLocations())
		})
	}
}

// fabricMerge re-implements the Fabric notebook that merges Synapse Link's
// incremental CSV folders into Lakehouse Delta tables
// (arasdk/fabric-code-samples, synapse_link/synapse_link_adls_incremental_merge.py):
//   - get_folders: the root's entries whose name matches
//     ^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}Z$, sorted by name, the last one
//     skipped (the folder being written); of the others, those after the
//     watermark (the last folder merged) whose model.json exists and is
//     not empty;
//   - get_table_schema_dict: the folder's model.json (json.load; a file
//     without "entities" raises); the entities with a non-empty
//     "partitions" list; the schema is the attributes in order: string
//     and guid strings, int64 long, int32 integer, dateTime timestamp
//     (SinkCreatedOn and SinkModifiedOn strings, then to_timestamp with
//     "MM/d/yyyy h:mm:ss a"), dateTimeOffset timestamp, decimal
//     decimal(38,18), double, boolean, anything else string;
//   - per partition, in model.json order, the file
//     <folder>/<table>/<partition name>.csv (a missing one raises),
//     spark.read with header False, multiline True, delimiter ',', quote
//     and escape '"' and the schema, PERMISSIVE: a value that does not
//     parse becomes NULL, so here it fails the test;
//   - per file, the first row per Id by IsDelete descending (true first,
//     NULL last), then the row version descending; merged into the table
//     on Id: a match is updated when the row is a delete or its row
//     version is higher, others are inserted, deletes too (soft deletes:
//     IsDelete stays set on the table's row);
//   - the watermark is saved after each folder.
//
// The notebook's row version column is F&O's sysrowversion. Dataverse
// tables carry versionnumber instead, in Synapse Link's output as in
// lakelink's, and on them the notebook unchanged fails ("cannot resolve
// sysrowversion") whichever wrote the lake; the test runs it with that one
// name replaced (fabricRowVersion).
type fabricMerge struct {
	t         *testing.T
	root      string
	watermark string
	tables    map[string]map[string]wantRow
}

const fabricRowVersion = "versionnumber"

var fabricFolderRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}Z$`)

func (m *fabricMerge) run() {
	t := m.t
	t.Helper()
	dirs, err := os.ReadDir(m.root)
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, d := range dirs {
		if fabricFolderRE.MatchString(d.Name()) {
			folders = append(folders, d.Name())
		}
	}
	sort.Strings(folders)
	if len(folders) > 0 {
		folders = folders[:len(folders)-1]
	}
	for _, folder := range folders {
		if m.watermark != "" && folder <= m.watermark {
			continue
		}
		info, err := os.Stat(filepath.Join(m.root, folder, modelName))
		if err != nil || info.Size() == 0 {
			continue
		}
		m.mergeFolder(folder)
		m.watermark = folder
	}
}

func (m *fabricMerge) mergeFolder(folder string) {
	t := m.t
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.root, folder, modelName))
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Entities *[]struct {
			Name       string    `json:"name"`
			Attributes []cdmAttr `json:"attributes"`
			Partitions []struct {
				Name string `json:"name"`
			} `json:"partitions"`
		} `json:"entities"`
	}
	if err := json.Unmarshal(data, &model); err != nil {
		t.Fatalf("fabric: %s/model.json: %v", folder, err)
	}
	if model.Entities == nil {
		t.Fatalf("fabric: %s/model.json has no entities: schema[\"entities\"] raises KeyError", folder)
	}
	for _, e := range *model.Entities {
		if len(e.Partitions) == 0 {
			continue
		}
		ent := &cdmEntity{Name: e.Name, Attributes: e.Attributes}
		for _, p := range e.Partitions {
			m.mergeFile(folder, ent, filepath.Join(m.root, folder, e.Name, p.Name+".csv"))
		}
	}
}

func (m *fabricMerge) mergeFile(folder string, ent *cdmEntity, path string) {
	t := m.t
	t.Helper()
	recs := readCSV(t, "fabric", path)
	id, ver, del, name := attrIndex(ent, "Id"), attrIndex(ent, fabricRowVersion), attrIndex(ent, "IsDelete"), attrIndex(ent, "name")
	latest := map[string]wantRow{}
	for k, rec := range recs {
		if len(rec) > len(ent.Attributes) {
			t.Fatalf("fabric: %s record %d: %d fields for %d columns", path, k+1, len(rec), len(ent.Attributes))
		}
		for c, fl := range rec {
			if _, err := fabricValue(ent.Attributes[c], fl); err != nil {
				t.Fatalf("fabric: %s record %d column %s: %v (PERMISSIVE makes it NULL)", path, k+1, ent.Attributes[c].Name, err)
			}
		}
		v, _ := strconv.ParseInt(rec[ver].v, 10, 64)
		r := wantRow{version: v, deleted: len(rec) > del && strings.EqualFold(rec[del].v, "true")}
		if !r.deleted {
			r.name = rec[name].v
		}
		old, ok := latest[rec[id].v]
		if !ok || r.deleted && !old.deleted || r.deleted == old.deleted && v > old.version {
			latest[rec[id].v] = r
		}
	}
	tbl := m.tables[ent.Name]
	if tbl == nil {
		tbl = map[string]wantRow{}
		m.tables[ent.Name] = tbl
	}
	for k, r := range latest {
		if old, ok := tbl[k]; !ok || r.deleted || r.version > old.version {
			tbl[k] = r
		}
	}
}

// fabricValue parses a field as the notebook's Spark schema types it.
func fabricValue(a cdmAttr, f csvField) (any, error) {
	if f.null() {
		return nil, nil
	}
	v := f.v
	switch a.DataType {
	case "int64":
		return strconv.ParseInt(v, 10, 64)
	case "int32":
		return strconv.ParseInt(v, 10, 32)
	case "dateTime", "dateTimeOffset":
		if a.Name == "SinkCreatedOn" || a.Name == "SinkModifiedOn" {
			// to_timestamp(..., "MM/d/yyyy h:mm:ss a"), as Spark's
			// legacy parser reads the pattern (MM takes one or two
			// digits): Synapse's M/d/yyyy h:mm:ss AM/PM.
			return time.Parse("1/2/2006 3:04:05 PM", v)
		}
		return sparkCastTimestamp(v)
	case "decimal":
		r, ok := new(big.Rat).SetString(v)
		if !ok {
			return nil, fmt.Errorf("%q is no decimal", v)
		}
		whole := new(big.Int).Quo(r.Num(), r.Denom())
		if len(whole.Abs(whole).String()) > 38-18 {
			return nil, fmt.Errorf("%q overflows decimal(38,18)", v)
		}
		return r, nil
	case "double":
		// The reader's nanValue, positiveInf and negativeInf (NaN, Inf,
		// -Inf), then Java's Double.parseDouble, which spells the
		// others NaN and Infinity exactly.
		switch v {
		case "NaN":
			return math.NaN(), nil
		case "Inf", "Infinity", "+Infinity":
			return math.Inf(1), nil
		case "-Inf", "-Infinity":
			return math.Inf(-1), nil
		}
		if strings.ContainsAny(v, "nN") {
			return nil, fmt.Errorf("%q is no Java double", v)
		}
		return strconv.ParseFloat(v, 64)
	case "boolean":
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q is no boolean", v)
	}
	return v, nil
}

// sparkTimestampRE is the form Spark's CSV reader parses a timestamp in
// when no timestampFormat is set (DateTimeUtils.stringToTimestamp, the
// cast's rules): an optional sign, a year of 4 to 7 digits, month and day
// of 1 or 2, an optional time with any number of fractional digits (past
// 6 truncated), an optional zone (Z or an offset); no "infinity".
var sparkTimestampRE = regexp.MustCompile(`^([+-]?)(\d{4,7})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?$`)

// Spark's TimestampType holds microseconds since 1970 in an int64.
var (
	sparkMinTime = time.UnixMicro(math.MinInt64).UTC()
	sparkMaxTime = time.UnixMicro(math.MaxInt64).UTC()
)

func sparkCastTimestamp(v string) (time.Time, error) {
	m := sparkTimestampRE.FindStringSubmatch(v)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is no timestamp to Spark's CSV reader", v)
	}
	num := func(s string) int {
		n, _ := strconv.Atoi(s)
		return n
	}
	year := num(m[2])
	if m[1] == "-" {
		year = -year
	}
	frac := (m[8] + "000000000")[:9]
	loc := time.UTC
	if z := m[9]; z != "" && z != "Z" {
		off := (num(z[1:3])*60 + num(z[4:6])) * 60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	}
	tm := time.Date(year, time.Month(num(m[3])), num(m[4]), num(m[5]), num(m[6]), num(m[7]), num(frac), loc)
	if tm.Before(sparkMinTime) || tm.After(sparkMaxTime) {
		return time.Time{}, fmt.Errorf("%q is outside Spark's timestamp range", v)
	}
	return tm.Truncate(time.Microsecond), nil
}

// TestConsumerFabricIncrementalMerge: the Fabric notebook, run after every
// round of an incremental-update folder lake, ends with exactly the
// source's records, and every deleted one soft-deleted.
func TestConsumerFabricIncrementalMerge(t *testing.T) {
	w := newWorkload(t, Options{Incremental: Incremental{Enabled: true, Interval: 15 * time.Minute}})
	m := &fabricMerge{t: t, root: w.st.Root(), tables: map[string]map[string]wantRow{}}
	w.run(true, func(int) { m.run() })
	live := map[string]map[string]wantRow{}
	for table, rows := range m.tables {
		live[table] = map[string]wantRow{}
		for id, r := range rows {
			if !r.deleted {
				live[table][id] = r
			}
		}
	}
	w.check("fabric", live)
	for table, want := range w.want {
		for id, r := range want {
			if g, ok := m.tables[table][id]; r.deleted && (!ok || !g.deleted) {
				t.Errorf("fabric: %s %s was deleted, the table has %+v (present: %v), want a soft delete", table, id, g, ok)
			}
		}
	}
}

// valueOutcome is what a consumer makes of one value.
type valueOutcome string

const (
	holds valueOutcome = "holds" // the consumer holds the value
	nulls valueOutcome = "NULL"  // it holds NULL instead, silently
	fails valueOutcome = "fails" // its run stops with an error
)

// sqlServerTime is what SQL Server's datetime2 and datetimeoffset make of
// a time: they hold the years 1 to 9999.
func sqlServerTime(tm time.Time) valueOutcome {
	if y := tm.UTC().Year(); y < 1 || y > 9999 {
		return fails
	}
	return holds
}

// dvToSQLOutcome: dataverse-to-sql's notebook (sparkValue), then its load
// into the Azure SQL table its C# side made (CdmSqlExtensions.SqlDataType:
// dateTime datetime2, dateTimeOffset datetimeoffset, double float,
// decimal(p,s)). A dateTime is read as a string and converted by
// coalesce(to_timestamp(v, format) for each format): NULL when none
// parses; Spark reads the formats' y as a signed year of any width
// (DateTimeFormatterHelper.convertIncompatiblePattern makes it u).
func dvToSQLOutcome(a, _ cdmAttr, f csvField) valueOutcome {
	if f.null() {
		return holds
	}
	switch a.DataType {
	case "dateTime":
		tm, err := sparkValue(a, f)
		if err != nil {
			if tm, err = sparkCastTimestamp(f.v); err != nil {
				return nulls
			}
		}
		return sqlServerTime(tm)
	case "dateTimeOffset":
		tm, err := time.Parse("2006-01-02T15:04:05.9999999Z07:00", f.v)
		if err != nil {
			return fails
		}
		return sqlServerTime(tm)
	case "double":
		x, err := strconv.ParseFloat(f.v, 64)
		switch {
		case err != nil:
			return nulls
		case math.IsNaN(x) || math.IsInf(x, 0):
			// SQL Server's float holds neither.
			return fails
		}
	}
	if _, err := sparkValue(a, f); err != nil {
		return nulls
	}
	return holds
}

// fastTrackOutcome: the serverless SQL view's conversion (sqlType and
// sqlConvert, of the attribute as read with "cdm:" removed); a value that
// does not convert fails the view's query, so the pipeline run.
func fastTrackOutcome(_, a cdmAttr, f csvField) valueOutcome {
	typ, err := sqlType(a)
	if err != nil || sqlConvert(typ, f) != nil {
		return fails
	}
	return holds
}

// estuaryOutcome: a value outside the capture's sourced schema fails it.
func estuaryOutcome(a, _ cdmAttr, f csvField) valueOutcome {
	if estuaryFormat(a, f) != nil {
		return fails
	}
	return holds
}

// fabricOutcome: the Fabric notebook's PERMISSIVE read makes a value that
// does not parse NULL.
func fabricOutcome(a, _ cdmAttr, f csvField) valueOutcome {
	if _, err := fabricValue(a, f); err != nil {
		return nulls
	}
	return holds
}

// valueConsumers are the consumers' value rules, in the order of
// TestConsumerPostgresValues' outcomes.
var valueConsumers = []struct {
	name string
	read func(a, sqlAttr cdmAttr, f csvField) valueOutcome
}{
	{"dataverse-to-sql", dvToSQLOutcome},
	{"fasttrack", fastTrackOutcome},
	{"estuary", estuaryOutcome},
	{"fabric", fabricOutcome},
}

// TestConsumerPostgresValues (#9 §2.8): the values only PostgreSQL sources
// produce (years outside 1..9999, infinite times, timestamptz, NaN and
// infinite doubles, numeric(38,10)'s extremes, numeric text) are written as
// docs/lake-format.md says, and each consumer's value rules make of them
// what its difference 10 says: each value is one record, read from the
// published <table>/*.csv by the position model.json gives its column.
func TestConsumerPostgresValues(t *testing.T) {
	bc := time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, column string
		value        any
		// written is the field as the file holds it.
		written string
		// want is the outcome of each of valueConsumers, in order.
		want [4]valueOutcome
	}{
		{"date 44 BC", "d", time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC), `"-0043-03-15T00:00:00.0000000Z"`, [4]valueOutcome{fails, fails, fails, holds}},
		{"timestamp 12345 AD", "ts", time.Date(12345, 6, 7, 8, 9, 10, 0, time.UTC), `"12345-06-07T08:09:10.0000000Z"`, [4]valueOutcome{fails, fails, fails, holds}},
		{"timestamp infinity", "ts", schema.Infinity, `"infinity"`, [4]valueOutcome{nulls, fails, fails, nulls}},
		{"date -infinity", "d", schema.NegInfinity, `"-infinity"`, [4]valueOutcome{nulls, fails, fails, nulls}},
		{"timestamptz", "tstz", time.Date(2020, 1, 1, 5, 15, 0, 0, time.UTC), `"2020-01-01T05:15:00.0000000+00:00"`, [4]valueOutcome{holds, holds, holds, holds}},
		{"timestamptz 44 BC", "tstz", bc, `"-0043-03-15T12:00:00.0000000+00:00"`, [4]valueOutcome{fails, fails, fails, holds}},
		{"timestamptz infinity", "tstz", schema.Infinity, `"infinity"`, [4]valueOutcome{fails, fails, fails, nulls}},
		{"double NaN", "f", math.NaN(), "NaN", [4]valueOutcome{fails, fails, holds, holds}},
		{"double Infinity", "f", math.Inf(1), "Infinity", [4]valueOutcome{fails, fails, holds, holds}},
		{"double -Infinity", "f", math.Inf(-1), "-Infinity", [4]valueOutcome{fails, fails, holds, holds}},
		{"numeric(38,10) max", "n", "9999999999999999999999999999.9999999999", "9999999999999999999999999999.9999999999", [4]valueOutcome{holds, holds, holds, nulls}},
		{"numeric(38,10) min", "n", "-9999999999999999999999999999.9999999999", "-9999999999999999999999999999.9999999999", [4]valueOutcome{holds, holds, holds, nulls}},
		{"numeric(38,10) 20 digits", "n", "-99999999999999999999.9999999999", "-99999999999999999999.9999999999", [4]valueOutcome{holds, holds, holds, holds}},
		{"numeric NaN (text)", "nu", "NaN", `"NaN"`, [4]valueOutcome{holds, holds, holds, holds}},
		{"numeric -Infinity (text)", "nu", "-Infinity", `"-Infinity"`, [4]valueOutcome{holds, holds, holds, holds}},
		{"date 0001-01-01", "d", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), `"0001-01-01T00:00:00.0000000Z"`, [4]valueOutcome{holds, holds, holds, holds}},
		{"timestamp 9999-12-31", "ts", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), `"9999-12-31T23:59:59.9999990Z"`, [4]valueOutcome{holds, holds, holds, holds}},
	}
	table := &schema.Table{
		Name: "events",
		Key:  []string{"id"},
		Columns: []schema.Column{
			{Name: "id", Type: schema.Int64, SourceType: "bigint", SourceTypeCode: 20},
			{Name: "d", Type: schema.DateTime, SourceType: "date", SourceTypeCode: 1082},
			{Name: "ts", Type: schema.DateTime, SourceType: "timestamp without time zone", SourceTypeCode: 1114},
			{Name: "tstz", Type: schema.DateTimeOffset, SourceType: "timestamp with time zone", SourceTypeCode: 1184},
			{Name: "f", Type: schema.Double, SourceType: "double precision", SourceTypeCode: 701},
			{Name: "n", Type: schema.Decimal, Precision: 38, Scale: 10, SourceType: "numeric(38,10)", SourceTypeCode: 1700},
			{Name: "nu", Type: schema.String, SourceType: "numeric", SourceTypeCode: 1700},
		},
	}
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: -1, SnapshotInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var changes []source.Change
	for i, tc := range cases {
		id := int64(i + 1)
		changes = append(changes, source.Change{Table: "events", ID: strconv.FormatInt(id, 10), Version: id, Columns: []string{"id", tc.column}, Values: []any{id, tc.value}})
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "events", Define: define(table, TableOptions{}), Changes: changes, Phase: Completed}}})
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	root := st.Root()
	es, err := readEntities(t, filepath.Join(root, trickleDir, "events-model.json"), false)
	if err != nil || len(es) != 1 {
		t.Fatalf("events-model.json: %v", err)
	}
	sqlEs, err := readEntities(t, filepath.Join(root, modelName), true)
	if err != nil || entityNamed(sqlEs, "events") == nil {
		t.Fatalf("model.json: %v", err)
	}
	ent, sqlEnt := &es[0], entityNamed(sqlEs, "events")
	files, err := filepath.Glob(filepath.Join(root, "events", "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("events/*.csv: %v %v", files, err)
	}
	byID := map[string][]csvField{}
	for _, file := range files {
		recs := readCSV(t, "", file)
		for _, rec := range recs {
			byID[rec[0].v] = rec
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := byID[strconv.Itoa(i+1)]
			col := attrIndex(ent, tc.column)
			if rec == nil || col < 0 || col >= len(rec) {
				t.Fatalf("no record %d with column %s in events/*.csv", i+1, tc.column)
			}
			f := rec[col]
			raw := f.v
			if f.quoted {
				raw = `"` + f.v + `"`
			}
			if raw != tc.written {
				t.Fatalf("%s is written %s, want %s", tc.column, raw, tc.written)
			}
			for k, vc := range valueConsumers {
				if got := vc.read(ent.Attributes[col], sqlEnt.Attributes[col], f); got != tc.want[k] {
					t.Errorf("%s: %s %s %q: %s, docs/lake-format.md (difference 10) says %s", vc.name, ent.Attributes[col].DataType, tc.column, f.v, got, tc.want[k])
				}
			}
		})
	}
}
