package lake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/lakelink/lakelink/internal/csvfield"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/store"
)

// The Synapse-facing files derived from the state (reference sections 1, 3,
// 4). They are output only: lakelink never reads them back.
const (
	modelName    = "model.json"
	trickleDir   = "Microsoft.Athena.TrickleFeedService/"
	optionsetDir = "OptionsetMetadata/"
)

// derivedCache tracks the derived files as last written. The protocol
// marks the tables a commit touched; Maintain (and Close) call Derive, so
// that a commit costs its data objects and its record and nothing else, and
// a burst of commits (an initial sync of hundreds of tables) rewrites
// model.json once, not once per commit.
type derivedCache struct {
	// hashes of each derived file as last written, so that only files
	// whose content changed are rewritten.
	hashes map[string][32]byte
	// published maps table -> published stem -> the object it is a copy
	// of ("" when emptied, unknownSource when found in the store at
	// Open), so that only changed ones are copied (publish.go).
	published map[string]map[string]string
}

// Derive implements Format.
func (l *csvFormat) Derive(ctx context.Context, s *State, dirty map[string]bool, all bool) error {
	if err := l.writeDerived(ctx, s, dirty, all); err != nil {
		return fmt.Errorf("updating model.json and metadata: %w", err)
	}
	return nil
}

// writeDerived rewrites the derived files of the tables dirty (all tables
// when all), and the lake-wide files when any of those changed or a table
// came or went; in incremental-update folder mode also the folders'.
func (l *csvFormat) writeDerived(ctx context.Context, s *State, dirty map[string]bool, all bool) error {
	touched := dirty
	if all {
		// Besides every table of the state, the tables dropped since
		// (dirty) and those whose published files are known but that the
		// state no longer has (dropped while no Maintain ran, see
		// notePublished): their derived files go.
		touched = maps.Clone(dirty)
		if touched == nil {
			touched = map[string]bool{}
		}
		for name := range s.Tables {
			touched[name] = true
		}
		for name := range l.derived.published {
			touched[name] = true
		}
	}
	lakeWide := all
	names := make([]string, 0, len(touched))
	for name := range touched {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ts := s.Tables[name]
		if err := l.publishTable(ctx, name, ts); err != nil {
			return err
		}
		if ts == nil {
			for _, p := range []string{trickleDir + name + "-model.json", trickleDir + name + "-EntityMetadata.json"} {
				if err := l.st.Delete(ctx, p); err != nil {
					return fmt.Errorf("deleting %s of dropped table %s: %w", p, name, err)
				}
				delete(l.derived.hashes, p)
			}
			delete(l.derived.published, name)
			lakeWide = true
			continue
		}
		changed, err := l.writeTableFiles(ctx, ts, "", l.putIfChanged)
		if err != nil {
			return err
		}
		lakeWide = lakeWide || changed
	}
	if lakeWide {
		if err := l.writeLakeWide(ctx, s, "", l.putIfChanged); err != nil {
			return err
		}
	}
	if l.opts.Incremental.Enabled {
		return l.advanceFolders(ctx, s, lakeWide)
	}
	return nil
}

// putFunc writes a derived file and reports whether it changed.
type putFunc func(ctx context.Context, name string, data []byte) (bool, error)

// writeTableFiles writes a table's own manifest and entity metadata under
// prefix+Microsoft.Athena.TrickleFeedService/, reporting a change.
func (l *csvFormat) writeTableFiles(ctx context.Context, ts *TableState, prefix string, put putFunc) (bool, error) {
	m, err := json.MarshalIndent(manifest{Name: "cdm", Description: "cdm", Version: "1.0", Entities: []entity{l.entity(ts)}}, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encoding the model of table %s: %w", ts.Name, err)
	}
	changed, err := put(ctx, prefix+trickleDir+ts.Name+"-model.json", m)
	if err != nil {
		return false, err
	}
	em, err := json.MarshalIndent(entityMetadata(ts), "", "  ")
	if err != nil {
		return false, fmt.Errorf("encoding the metadata of table %s: %w", ts.Name, err)
	}
	changed2, err := put(ctx, prefix+trickleDir+ts.Name+"-EntityMetadata.json", em)
	if err != nil {
		return false, err
	}
	return changed || changed2, nil
}

// writeLakeWide writes the five OptionsetMetadata CSVs and model.json of all
// tables under the folder prefix ("" for the lake root), model.json last.
func (l *csvFormat) writeLakeWide(ctx context.Context, s *State, prefix string, put putFunc) error {
	names := s.TableNames()
	m := manifest{Name: "cdm", Description: "cdm", Version: "1.0", Entities: []entity{}}
	for _, name := range names {
		m.Entities = append(m.Entities, l.entity(s.Tables[name]))
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding model.json: %w", err)
	}
	files, err := metadataCSVs(s, names)
	if err != nil {
		return err
	}
	for _, f := range metadataFiles {
		if _, err := put(ctx, prefix+optionsetDir+f, files[f]); err != nil {
			return err
		}
	}
	_, err = put(ctx, prefix+modelName, data)
	return err
}

func (l *csvFormat) putIfChanged(ctx context.Context, name string, data []byte) (bool, error) {
	if l.derived.hashes == nil {
		l.derived.hashes = map[string][32]byte{}
	}
	h := sha256.Sum256(data)
	if old, ok := l.derived.hashes[name]; ok && old == h {
		return false, nil
	}
	if err := store.Put(ctx, l.st, name, data); err != nil {
		return false, fmt.Errorf("writing %s: %w", name, err)
	}
	l.derived.hashes[name] = h
	return true, nil
}

type manifest struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Version     string   `json:"version"`
	Entities    []entity `json:"entities"`
}

type entity struct {
	Type        string       `json:"$type"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Annotations []annotation `json:"annotations"`
	Attributes  []attribute  `json:"attributes"`
	Partitions  []partition  `json:"partitions"`
}

type annotation struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type attribute struct {
	Name      string  `json:"name"`
	DataType  string  `json:"dataType"`
	MaxLength int     `json:"maxLength"`
	Traits    []trait `json:"cdm:traits,omitempty"`
}

type trait struct {
	Reference string     `json:"traitReference"`
	Arguments []argument `json:"arguments"`
}

type argument struct {
	Name  string `json:"name"`
	Value int    `json:"value"`
}

type partition struct {
	Name     string `json:"name"`
	Location string `json:"location"`
}

// syncState maps a table's phase to Synapse's InitialSyncState. Readers take
// only Completed entities; a table that failed after its initial copy keeps
// readable data, so it shows CompletedWithFailures.
func syncState(ts *TableState) string {
	switch ts.Phase {
	case Completed:
		return "Completed"
	case Failed:
		if !ts.InitialSyncCompleted.IsZero() {
			return "CompletedWithFailures"
		}
		return "NotStarted"
	}
	return "InProgress"
}

func (l *csvFormat) entity(ts *TableState) entity {
	e := entity{Type: "LocalEntity", Name: ts.Name, Description: ts.Name,
		Annotations: []annotation{
			{Name: "Athena:PartitionGranularity", Value: string(ts.Options.Granularity)},
			{Name: "Athena:InitialSyncState", Value: syncState(ts)},
		},
		Partitions: []partition{},
	}
	if !ts.InitialSyncCompleted.IsZero() {
		e.Annotations = append(e.Annotations, annotation{Name: "Athena:InitialSyncDataCompletedTime", Value: ts.InitialSyncCompleted.UTC().Format(sinkLayout)})
	}
	for _, c := range ts.Columns {
		a := attribute{Name: c.Name, DataType: string(c.Type), MaxLength: -1}
		switch c.Type {
		case schema.String:
			if c.MaxLength > 0 {
				a.MaxLength = c.MaxLength
				a.Traits = []trait{{Reference: "is.constrained", Arguments: []argument{{Name: "maximumLength", Value: c.MaxLength}}}}
			}
		case schema.Decimal:
			p, sc := c.Precision, c.Scale
			if p == 0 && sc == 0 {
				p, sc = 38, 10
			}
			a.Traits = []trait{{Reference: "is.dataFormat.numeric.shaped", Arguments: []argument{{Name: "precision", Value: p}, {Name: "scale", Value: sc}}}}
		}
		e.Attributes = append(e.Attributes, a)
	}
	if n := len(ts.Snapshots); n > 0 {
		for _, f := range ts.Snapshots[n-1].Files {
			// The name is the stem of the live file the entry is a copy
			// of: consumers read <table>/<name>.csv. Snapshots taken
			// before files had Synapse names carry only the partition.
			name := f.Name
			if name == "" {
				name = f.Partition
			}
			e.Partitions = append(e.Partitions, partition{Name: name, Location: locationURI(l.st.Location(f.Path))})
		}
	}
	return e
}

// locationURI makes a store location the absolute URI CDM requires of a
// partition location: a store that names objects by URL keeps it; a local
// folder's absolute path becomes a file:// URI (escaped as URIs need).
func locationURI(loc string) string {
	if u, err := url.Parse(loc); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return loc
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(loc)}).String()
}

var metadataFiles = []string{"OptionsetMetadata.csv", "GlobalOptionsetMetadata.csv", "StateMetadata.csv", "StatusMetadata.csv", "TargetMetadata.csv"}

// metadataCSVs builds the five header-less choice metadata files (reference
// section 4) of the tables names, in that order.
func metadataCSVs(s *State, names []string) (map[string][]byte, error) {
	out := map[string]*bytes.Buffer{}
	for _, f := range metadataFiles {
		out[f] = &bytes.Buffer{}
	}
	for _, name := range names {
		md := entityMetadata(s.Tables[name])
		for _, r := range md.OptionSet {
			if err := csvLine(out["OptionsetMetadata.csv"], r.EntityName, r.OptionSetName, r.Option, r.IsUserLocalizedLabel, r.LocalizedLabelLanguageCode, r.LocalizedLabel); err != nil {
				return nil, fmt.Errorf("table %s: option set metadata: %w", name, err)
			}
		}
		for _, r := range md.GlobalOptionSet {
			if err := csvLine(out["GlobalOptionsetMetadata.csv"], r.OptionSetName, r.Option, r.IsUserLocalizedLabel, r.LocalizedLabelLanguageCode, r.LocalizedLabel, r.GlobalOptionSetName, r.EntityName, r.ExternalValue); err != nil {
				return nil, fmt.Errorf("table %s: global option set metadata: %w", name, err)
			}
		}
		for _, r := range md.State {
			if err := csvLine(out["StateMetadata.csv"], r.EntityName, r.State, r.IsUserLocalizedLabel, r.LocalizedLabelLanguageCode, r.LocalizedLabel); err != nil {
				return nil, fmt.Errorf("table %s: state metadata: %w", name, err)
			}
		}
		for _, r := range md.Status {
			if err := csvLine(out["StatusMetadata.csv"], r.EntityName, r.State, r.Status, r.IsUserLocalizedLabel, r.LocalizedLabelLanguageCode, r.LocalizedLabel); err != nil {
				return nil, fmt.Errorf("table %s: status metadata: %w", name, err)
			}
		}
		for _, r := range md.Target {
			if err := csvLine(out["TargetMetadata.csv"], r.EntityName, r.AttributeName, r.ReferencedEntity, r.ReferencedAttribute); err != nil {
				return nil, fmt.Errorf("table %s: target metadata: %w", name, err)
			}
		}
	}
	res := map[string][]byte{}
	for k, v := range out {
		res[k] = v.Bytes()
	}
	return res, nil
}

// metadataColumns is the number of columns of each metadata CSV: what the
// FastTrack serverless-SQL scripts declare in their OPENROWSET ... WITH
// clauses (GlobalOptionsetMetadata has Synapse's seven plus ExternalValue).
// The consumer tests check every file against it.
var metadataColumns = map[string]int{
	"OptionsetMetadata.csv":       6,
	"GlobalOptionsetMetadata.csv": 8,
	"StateMetadata.csv":           5,
	"StatusMetadata.csv":          6,
	"TargetMetadata.csv":          4,
}

// csvLine writes one metadata row: ints and bools bare, strings bare unless
// they need quoting (a comma, a quote, a line break, or leading or trailing
// white space a trimming reader would lose), as Synapse writes them. Readers
// that split lines on commas (dataverse-to-sql's option-set loader) rely
// on names and plain labels being bare.
func csvLine(b *bytes.Buffer, vals ...any) error {
	var buf []byte
	for i, v := range vals {
		if i > 0 {
			buf = append(buf, ',')
		}
		var t schema.Type
		switch v := v.(type) {
		case string:
			buf = csvfield.Append(buf, v, false)
			continue
		case int:
			t = schema.Int64
		case bool:
			t = schema.Boolean
		}
		var err error
		buf, err = encodeValue(buf, t, v)
		if err != nil {
			return err
		}
	}
	b.Write(buf)
	b.WriteByte('\n')
	return nil
}

type optionRow struct {
	EntityName                 string
	OptionSetName              string
	Option                     int
	IsUserLocalizedLabel       bool
	LocalizedLabelLanguageCode int
	LocalizedLabel             string
}

type globalOptionRow struct {
	OptionSetName              string
	Option                     int
	IsUserLocalizedLabel       bool
	LocalizedLabelLanguageCode int
	LocalizedLabel             string
	GlobalOptionSetName        string
	EntityName                 string
	// ExternalValue is the option's external value; Dataverse sources
	// have none, so it is empty. FastTrack's scripts read the column.
	ExternalValue string
}

type stateRow struct {
	EntityName                 string
	State                      int
	IsUserLocalizedLabel       bool
	LocalizedLabelLanguageCode int
	LocalizedLabel             string
}

type statusRow struct {
	EntityName                 string
	State                      int
	Status                     int
	IsUserLocalizedLabel       bool
	LocalizedLabelLanguageCode int
	LocalizedLabel             string
}

type targetRow struct {
	EntityName          string
	AttributeName       string
	ReferencedEntity    string
	ReferencedAttribute string
}

type attributeRow struct {
	EntityName        string
	AttributeName     string
	AttributeType     string
	AttributeTypeCode int
	Version           int
	Timestamp         string
	MetadataId        string
	Precision         int
	MaxLength         int
}

// entityMetadataDoc is <table>-EntityMetadata.json.
type entityMetadataDoc struct {
	OptionSet       []optionRow       `json:"OptionSetMetadata"`
	GlobalOptionSet []globalOptionRow `json:"GlobalOptionSetMetadata"`
	State           []stateRow        `json:"StateMetadata"`
	Status          []statusRow       `json:"StatusMetadata"`
	Target          []targetRow       `json:"TargetMetadata"`
	Attribute       []attributeRow    `json:"AttributeMetadata"`
}

// metadataNamespace seeds the stable MetadataId of an attribute: lakelink
// has no source metadata id, so it derives one from table and column.
var metadataNamespace = uuid.MustParse("6c1f6c36-0d0e-4a59-9d57-5b0a3f7f1a10")

// metadataStampLayout formats AttributeMetadata's Timestamp: ISO 8601 with
// milliseconds, which SQL Server's datetime (what FastTrack's OPENJSON
// declares) accepts; seven fractional digits it would reject.
const metadataStampLayout = "2006-01-02T15:04:05.000Z"

// lakeAttributeTypes are the Dataverse AttributeType names and codes of the
// CDM types, for the columns the source does not describe: lakelink's
// system columns (Id, SinkCreatedOn, SinkModifiedOn, versionnumber,
// IsDelete) and dropped ones.
var lakeAttributeTypes = map[schema.Type]struct {
	name string
	code int
}{
	schema.Boolean: {"Boolean", 0}, schema.DateTime: {"DateTime", 2}, schema.DateTimeOffset: {"DateTime", 2},
	schema.Decimal: {"Decimal", 3}, schema.Double: {"Double", 4}, schema.JSON: {"Memo", 7},
	schema.String: {"String", 14}, schema.Guid: {"Uniqueidentifier", 15}, schema.Int64: {"BigInt", 18},
}

// attributeType names a layout column's AttributeType and its code: the
// source's own where it describes the column, else the Dataverse type of
// its CDM type.
func attributeType(src *schema.Table, c Column) (string, int) {
	if sc, ok := src.Column(c.Name); ok && sc.SourceType != "" && !c.System {
		return sc.SourceType, sc.SourceTypeCode
	}
	t := lakeAttributeTypes[c.Type]
	return t.name, t.code
}

// decimalPlaces is AttributeMetadata's Precision: for money and decimal
// columns Dataverse's Precision is the number of digits after the point,
// which the layout keeps as Scale (the lake default 10 when the source
// gave no shape, as model.json says); other types have none.
func decimalPlaces(c Column) int {
	if c.Type != schema.Decimal {
		return 0
	}
	if c.Precision == 0 && c.Scale == 0 {
		return 10
	}
	return c.Scale
}

func entityMetadata(ts *TableState) entityMetadataDoc {
	d := entityMetadataDoc{OptionSet: []optionRow{}, GlobalOptionSet: []globalOptionRow{}, State: []stateRow{}, Status: []statusRow{}, Target: []targetRow{}, Attribute: []attributeRow{}}
	src := ts.Source
	if src == nil {
		return d
	}
	for _, os := range src.OptionSets {
		for _, o := range os.Options {
			if os.Global == "" {
				d.OptionSet = append(d.OptionSet, optionRow{ts.Name, os.Column, o.Value, o.UserLocalized, o.Language, o.Label})
			} else {
				d.GlobalOptionSet = append(d.GlobalOptionSet, globalOptionRow{os.Column, o.Value, o.UserLocalized, o.Language, o.Label, os.Global, ts.Name, ""})
			}
		}
	}
	for _, o := range src.States {
		d.State = append(d.State, stateRow{ts.Name, o.Value, o.UserLocalized, o.Language, o.Label})
	}
	for _, o := range src.Statuses {
		d.Status = append(d.Status, statusRow{ts.Name, o.State, o.Value, o.UserLocalized, o.Language, o.Label})
	}
	for _, c := range src.Columns {
		for _, t := range c.Targets {
			d.Target = append(d.Target, targetRow{ts.Name, c.Name, t, strings.ToLower(t) + "id"})
		}
	}
	stamp := ""
	if !ts.Described.IsZero() {
		stamp = ts.Described.UTC().Format(metadataStampLayout)
	}
	for _, c := range ts.Columns {
		typ, code := attributeType(src, c)
		d.Attribute = append(d.Attribute, attributeRow{
			EntityName: ts.Name, AttributeName: c.Name, AttributeType: typ, AttributeTypeCode: code,
			Timestamp:  stamp,
			MetadataId: uuid.NewSHA1(metadataNamespace, []byte(ts.Name+"."+c.Name)).String(),
			Precision:  decimalPlaces(c), MaxLength: c.MaxLength,
		})
	}
	return d
}
