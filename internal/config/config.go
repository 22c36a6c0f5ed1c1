// Package config loads and validates link profiles: the YAML file that names a
// source, a lake (a folder or a store URL), the linked tables and the link's options.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/lakelink/lakelink/internal/store"
)

// Duration is a time.Duration written as "15m", "1h30m". A malformed value is
// kept and reported by validation, which knows the line it is on.
type Duration struct {
	time.Duration
	bad string
}

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	v, err := time.ParseDuration(s)
	if err != nil {
		d.bad = s
		return nil
	}
	d.Duration = v
	return nil
}

// Link is a link profile.
type Link struct {
	Name   string  `yaml:"name"`
	Source Source  `yaml:"source"`
	Lake   Lake    `yaml:"lake"`
	Tables []Table `yaml:"tables"`
	// Snapshots: how often Snapshot/ copies are taken and how many are kept.
	Snapshots          Snapshots   `yaml:"snapshots"`
	IncrementalFolders Incremental `yaml:"incremental_folders"`
	Sync               Sync        `yaml:"sync"`
	// Format names the lake's table format, as registered by its package
	// (lake.RegisterFormat); default csv, the Synapse CSV format. The
	// package that opens links checks it against the registered names.
	Format string `yaml:"format"`

	// File is the path the profile was loaded from.
	File string `yaml:"-"`
}

// Source says where the data comes from. Which keys apply depends on Type.
type Source struct {
	Type string `yaml:"type"` // dataverse | postgres

	// Dataverse.
	URL               string   `yaml:"url"`
	Auth              Auth     `yaml:"auth"`
	PageSize          int      `yaml:"page_size"`
	PollInterval      Duration `yaml:"poll_interval"`
	MaxPollInterval   Duration `yaml:"max_poll_interval"`
	RequestsPerSecond float64  `yaml:"requests_per_second"`

	// Postgres.
	DSN          string `yaml:"dsn"`
	PasswordFile string `yaml:"password_file"`
	Publication  string `yaml:"publication"`
	Slot         string `yaml:"slot"`
	CopyWorkers  int    `yaml:"copy_workers"`
}

// Auth holds how lakelink signs in to a real Dataverse environment. Secrets
// are never written in the profile itself: only the name of the environment
// variable or the file that holds them.
type Auth struct {
	TenantID         string `yaml:"tenant_id"`
	ClientID         string `yaml:"client_id"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	CertificateFile  string `yaml:"certificate_file"`
	ManagedIdentity  bool   `yaml:"managed_identity"`
	// TokenEnv names a variable holding a static bearer token (the emulator's
	// --token).
	TokenEnv string `yaml:"token_env"`
}

// Lake says where the lake is: a folder (Path) or the URL of its store
// (URL), exactly one of them.
type Lake struct {
	// Path is the lake folder; a relative path is relative to the profile's
	// directory.
	Path string `yaml:"path"`
	// URL is the lake's location as store.Open takes it, such as
	// file:///srv/lake; its scheme names the store.
	URL string `yaml:"url"`
}

// Table is one linked table.
type Table struct {
	Name       string `yaml:"name"`
	AppendOnly bool   `yaml:"append_only"`
	// Partition is year (default) or month.
	Partition string `yaml:"partition"`
	// PartitionColumn (Postgres) is the timestamp column that chooses a row's
	// partition.
	PartitionColumn string `yaml:"partition_column"`
}

// Snapshots configures Snapshot/ copies.
type Snapshots struct {
	Interval Duration `yaml:"interval"`
	Keep     *int     `yaml:"keep"`
}

// Incremental configures Synapse's incremental-update folder mode.
type Incremental struct {
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
}

// Sync tunes the engine.
type Sync struct {
	// Workers bounds the tables copied at once during initial syncs.
	Workers int `yaml:"workers"`
}

// Defaults, also documented in the README's profile reference.
const (
	DefaultSnapshotInterval    = time.Hour
	DefaultSnapshotsKeep       = 5
	DefaultIncrementalInterval = 15 * time.Minute
	DefaultWorkers             = 8
	// DefaultFormat is the Synapse CSV format (lake.DefaultFormat).
	DefaultFormat = "csv"
)

// Error is a profile error located at a line of the file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

// Load reads, defaults and validates the profile at path.
func Load(path string) (*Link, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("link profile: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a profile; path is used in messages and to resolve relative
// paths.
func Parse(path string, data []byte) (*Link, error) {
	var l Link
	if err := yaml.UnmarshalWithOptions(data, &l, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: invalid link profile:\n%s", path, yaml.FormatError(err, false, true))
	}
	l.File = path
	l.setDefaults()
	if err := l.validate(data); err != nil {
		return nil, err
	}
	return &l, nil
}

func (l *Link) setDefaults() {
	if l.Snapshots.Interval.Duration == 0 {
		l.Snapshots.Interval.Duration = DefaultSnapshotInterval
	}
	if l.Snapshots.Keep == nil {
		k := DefaultSnapshotsKeep
		l.Snapshots.Keep = &k
	}
	if l.IncrementalFolders.Interval.Duration == 0 {
		l.IncrementalFolders.Interval.Duration = DefaultIncrementalInterval
	}
	if l.Sync.Workers == 0 {
		l.Sync.Workers = DefaultWorkers
	}
	if l.Format == "" {
		l.Format = DefaultFormat
	}
	for i := range l.Tables {
		if l.Tables[i].Partition == "" {
			l.Tables[i].Partition = "year"
		}
		l.Tables[i].Partition = strings.ToLower(l.Tables[i].Partition)
	}
}

var (
	linkName   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	formatName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
)

func (l *Link) validate(data []byte) error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &Error{File: l.File, Line: line(data, field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case l.Name == "":
		fail("name", "missing: give the link a name (letters, digits, _ and -)")
	case !linkName.MatchString(l.Name):
		fail("name", "%q is not a valid link name: use letters, digits, _ and -, starting with a letter", l.Name)
	}
	switch l.Source.Type {
	case "dataverse":
		if l.Source.URL == "" {
			fail("source.url", "missing: the environment URL, e.g. https://<org>.crm.dynamics.com or the emulator's http://127.0.0.1:8081")
		} else if !strings.HasPrefix(l.Source.URL, "http://") && !strings.HasPrefix(l.Source.URL, "https://") {
			fail("source.url", "%q is not an http(s) URL", l.Source.URL)
		}
		if l.Source.DSN != "" {
			fail("source.dsn", "dsn belongs to postgres sources; this source is dataverse")
		}
		a := l.Source.Auth
		if a.ClientSecretEnv != "" && a.ClientSecretFile != "" {
			fail("source.auth.client_secret_file", "give client_secret_env or client_secret_file, not both")
		}
		if (a.ClientSecretEnv != "" || a.ClientSecretFile != "" || a.CertificateFile != "") && (a.TenantID == "" || a.ClientID == "") {
			fail("source.auth", "client credentials need tenant_id and client_id")
		}
		if l.Source.PageSize < 0 || l.Source.PageSize > 5000 {
			fail("source.page_size", "%d is out of range: Dataverse pages hold 1 to 5000 rows", l.Source.PageSize)
		}
	case "postgres":
		if l.Source.DSN == "" {
			fail("source.dsn", "missing: a connection string such as postgres://app@127.0.0.1:5432/shop (the password comes from PGPASSWORD or password_file)")
		}
		if l.Source.URL != "" {
			fail("source.url", "url belongs to dataverse sources; this source is postgres (use dsn)")
		}
	case "":
		fail("source.type", "missing: dataverse or postgres")
	default:
		fail("source.type", "%q is not a source type: use dataverse or postgres", l.Source.Type)
	}
	switch u := l.Lake.URL; {
	case u != "" && l.Lake.Path != "":
		fail("lake.url", "set lake.path (a folder) or lake.url, not both")
	case u != "" && !strings.Contains(u, "://"):
		fail("lake.url", "%q is not a URL: write it as scheme://..., e.g. file:///srv/lake/%s, or put a folder in lake.path", u, l.Name)
	case u != "":
		if _, err := store.Parse(u); err != nil {
			fail("lake.url", "%v", err)
		}
	case l.Lake.Path == "":
		fail("lake.path", "missing: the lake folder, e.g. ./lake/%s (or lake.url, the URL of its store)", l.Name)
	}
	if len(l.Tables) == 0 {
		fail("tables", "no tables: list at least one, e.g. - name: contact")
	}
	seen := map[string]bool{}
	for i, t := range l.Tables {
		f := fmt.Sprintf("tables[%d]", i)
		if t.Name == "" {
			fail(f+".name", "missing table name")
			continue
		}
		if seen[strings.ToLower(t.Name)] {
			fail(f+".name", "table %s is listed twice", t.Name)
		}
		seen[strings.ToLower(t.Name)] = true
		if t.Partition != "year" && t.Partition != "month" {
			fail(f+".partition", "%q is not a partition strategy: use year or month", t.Partition)
		}
		if t.PartitionColumn != "" && l.Source.Type != "postgres" {
			fail(f+".partition_column", "only postgres tables choose a partition column; Dataverse partitions by createdon")
		}
	}
	for _, d := range []struct {
		field string
		d     Duration
	}{
		{"source.poll_interval", l.Source.PollInterval},
		{"source.max_poll_interval", l.Source.MaxPollInterval},
		{"snapshots.interval", l.Snapshots.Interval},
		{"incremental_folders.interval", l.IncrementalFolders.Interval},
	} {
		if d.d.bad != "" {
			fail(d.field, "%q is not a duration: write it like 30s, 15m or 1h", d.d.bad)
		}
	}
	if k := *l.Snapshots.Keep; k < 0 || k > 100 {
		fail("snapshots.keep", "%d is out of range: keep 0 to 100 snapshots", k)
	}
	if l.Snapshots.Interval.Duration < time.Minute {
		fail("snapshots.interval", "%s is too short: at least 1m", l.Snapshots.Interval.Duration)
	}
	if l.IncrementalFolders.Enabled && (l.IncrementalFolders.Interval.Duration < time.Minute || l.IncrementalFolders.Interval.Duration > 24*time.Hour) {
		fail("incremental_folders.interval", "%s is out of range: 1m to 24h", l.IncrementalFolders.Interval.Duration)
	}
	if !formatName.MatchString(l.Format) {
		fail("format", "%q is not a format name: use a lower-case name such as csv", l.Format)
	}
	if l.Sync.Workers < 1 || l.Sync.Workers > 64 {
		fail("sync.workers", "%d is out of range: 1 to 64", l.Sync.Workers)
	}
	return errors.Join(errs...)
}

// LakeLocation returns where the lake is, as store.Open takes it: lake.url,
// or the lake.path folder with a relative path resolved against the
// profile's directory.
func (l *Link) LakeLocation() string {
	if l.Lake.URL != "" {
		return l.Lake.URL
	}
	if filepath.IsAbs(l.Lake.Path) || l.File == "" {
		return l.Lake.Path
	}
	return filepath.Join(filepath.Dir(l.File), l.Lake.Path)
}

// line returns the line of field (a dotted path with [i] indexes) in the
// YAML document, or 0 when the field is absent.
func line(data []byte, field string) int {
	for f := field; f != ""; {
		p, err := yaml.PathString("$." + f)
		if err == nil {
			if n, err := p.ReadNode(strings.NewReader(string(data))); err == nil && n != nil {
				return n.GetToken().Position.Line
			}
		}
		// Fall back to the enclosing field.
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}
