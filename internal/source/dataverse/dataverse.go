// Package dataverse is the source connector for Microsoft Dataverse /
// Dynamics 365 through the Web API v9.2: it lists and describes tables from
// EntityDefinitions, copies a table with a change-tracking read
// (Prefer: odata.track-changes) and then follows its delta links.
//
// All requests of one Source share one rate limiter (Config.RequestsPerSecond)
// and one retry policy: 429, 5xx and broken connections are retried with
// capped, jittered exponential backoff honouring Retry-After; other errors
// stop the read with an *HTTPError naming the table and URL.
//
// It registers itself as source.type dataverse (register.go) and
// implements none of the optional interfaces of package source: it keeps
// nothing for a link in the environment (a delta token is only a cursor),
// so there is nothing to delete on unlink and no retained data to report.
// It imports package source and schema only.
package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
)

// Defaults of Config.
const (
	DefaultPageSize        = 5000
	DefaultPollInterval    = time.Second
	DefaultMaxPollInterval = 30 * time.Second
	// DefaultRequestsPerSecond keeps a link at 75% of the Dataverse service
	// protection limit of 6000 requests per user per 5 minutes (20/s),
	// leaving room for other clients signed in as the same application user.
	DefaultRequestsPerSecond = 15
	// DefaultConcurrency is how many requests a Stream keeps in flight; the
	// service protection limit on concurrent requests per user is 52.
	DefaultConcurrency = 4
	// idleConnsPerHost is the connections kept open for reuse: a Stream's
	// reads and the initial copies' (sync.workers, 8 by default).
	idleConnsPerHost = 16
	// pollShare is the part of RequestsPerSecond the change stream may
	// use (Source.polls).
	pollShare = 0.5
	// DefaultSchemaInterval is how often Stream looks for column changes.
	DefaultSchemaInterval = 5 * time.Minute
)

// Config configures a Source.
type Config struct {
	// URL is the environment URL, e.g. https://contoso.crm.dynamics.com or
	// an emulator's http://127.0.0.1:8081. A trailing /api/data/v9.2 is
	// accepted.
	URL  string
	Auth Auth
	// PageSize is the odata.maxpagesize of reads, 1..5000 (default 5000).
	PageSize int
	// PollInterval is the shortest time between two delta reads of a busy
	// table (default 1s); MaxPollInterval the longest an idle table backs
	// off to (default 30s).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// RequestsPerSecond is the whole link's request budget (default 15).
	RequestsPerSecond float64
	// Concurrency bounds the requests a Stream has in flight (default 4).
	Concurrency int
	// SchemaInterval is how often Stream reads each table's attributes
	// again to notice added and dropped columns (default 5 minutes; one
	// request per table).
	SchemaInterval time.Duration
	// HTTPClient sends the requests, Entra ID's included; nil means a
	// client with a 2-minute timeout.
	HTTPClient *http.Client
	Events     source.Events
	Logger     *slog.Logger
}

// Source is a connected Dataverse environment. It implements source.Source.
type Source struct {
	cfg Config
	c   *client
	// polls is the change stream's share of the request budget: a delta
	// read or schema check of Stream takes a token of it before the
	// client's, so that polling idle tables never takes more than
	// pollShare of RequestsPerSecond and initial copies, describes and
	// other Stream restarts always find the rest (issue #16: 1000 tables
	// polled at 1 s took 95 % of the budget and copies crawled).
	polls *rate.Limiter

	mu      sync.Mutex
	layouts map[string]*layout
}

var _ source.Source = (*Source)(nil)

// New connects to the environment at cfg.URL. It makes one request to check
// the URL and the credentials, and fails with an error that says which of
// them is wrong: the host cannot be reached, the credentials are refused,
// or the URL answers but is not a Dataverse Web API.
func New(ctx context.Context, cfg Config) (*Source, error) {
	base, err := baseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg.URL = base
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.PageSize > 5000 {
		return nil, fmt.Errorf("dataverse: page size %d is out of range: Dataverse pages hold 1 to 5000 rows", cfg.PageSize)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollInterval <= 0 {
		cfg.MaxPollInterval = DefaultMaxPollInterval
	}
	cfg.MaxPollInterval = max(cfg.MaxPollInterval, cfg.PollInterval)
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.SchemaInterval <= 0 {
		cfg.SchemaInterval = DefaultSchemaInterval
	}
	if cfg.HTTPClient == nil {
		// The default transport keeps 2 idle connections per host: a
		// Stream's Concurrency reads plus the copies' requests then open a
		// new connection (a TLS handshake against Dataverse) for most
		// requests (#16).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = idleConnsPerHost
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute, Transport: tr}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	auth, err := authorizerFor(cfg.Auth, base, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg: cfg,
		c: &client{
			base:    base,
			http:    cfg.HTTPClient,
			auth:    auth,
			limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), max(1, int(cfg.RequestsPerSecond))),
			events:  cfg.Events,
			log:     cfg.Logger,
			backoff: defaultBackoff,
		},
		polls:   rate.NewLimiter(rate.Limit(pollShare*cfg.RequestsPerSecond), cfg.Concurrency),
		layouts: map[string]*layout{},
	}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	cfg.Logger.Debug("dataverse connected", "url", base, "auth", cfg.Auth)
	return s, nil
}

// baseURL checks and normalises the environment URL.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", errors.New("dataverse: source.url is not a URL; give the environment URL such as https://contoso.crm.dynamics.com")
	}
	if u.User != nil {
		return "", errors.New("dataverse: source.url must not carry credentials; use source.auth")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("dataverse: source.url %q is not an http(s) URL such as https://contoso.crm.dynamics.com", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, strings.TrimRight(apiPath, "/"))
	return u.Scheme + "://" + u.Host + p, nil
}

// probe makes the first request New promises.
func (s *Source) probe(ctx context.Context) error {
	u := s.c.base + apiPath + "EntityDefinitions?$select=LogicalName"
	var body struct {
		Context string            `json:"@odata.context"`
		Value   []json.RawMessage `json:"value"`
	}
	op := func() (struct{}, error) {
		err := s.c.attempt(ctx, "", u, "", func(r io.Reader) error {
			if err := json.NewDecoder(r).Decode(&body); err != nil {
				return &DecodeError{Err: err}
			}
			return nil
		})
		var r *retryable
		var herr *HTTPError
		switch {
		case errors.As(err, new(*AuthError)):
			return struct{}{}, backoff.Permanent(fmt.Errorf("dataverse: signing in to %s (%s): %w", s.c.base, s.cfg.Auth, err))
		case errors.As(err, &r) && r.status == 0:
			return struct{}{}, backoff.Permanent(fmt.Errorf("dataverse: cannot reach %s: %w; check source.url and the network", s.c.base, r.err))
		case errors.As(err, &herr) && (herr.Status == http.StatusUnauthorized || herr.Status == http.StatusForbidden):
			return struct{}{}, backoff.Permanent(fmt.Errorf("dataverse: %s refused the credentials (%s): %w", s.c.base, s.cfg.Auth, err))
		case errors.As(err, &herr):
			return struct{}{}, backoff.Permanent(fmt.Errorf("dataverse: %s does not answer as a Dataverse Web API: %w", s.c.base, err))
		case errors.As(err, new(*DecodeError)):
			return struct{}{}, backoff.Permanent(fmt.Errorf("dataverse: %s answered %s with something other than OData JSON: is source.url the environment URL (https://<org>.crm.dynamics.com)?", s.c.base, u))
		}
		return struct{}{}, err
	}
	_, err := backoff.Retry(ctx, op, backoff.WithBackOff(s.c.backoff()), backoff.WithMaxElapsedTime(30*time.Second))
	if err != nil {
		return err
	}
	if body.Value == nil || (body.Context != "" && !strings.Contains(body.Context, "EntityDefinitions")) {
		return fmt.Errorf("dataverse: %s answered %s without an EntityDefinitions collection: is source.url the environment URL (https://<org>.crm.dynamics.com)?", s.c.base, u)
	}
	return nil
}

// Close releases idle connections.
func (s *Source) Close() error {
	s.c.http.CloseIdleConnections()
	return nil
}

// entityDef is the part of EntityMetadata the connector uses.
type entityDef struct {
	LogicalName           string `json:"LogicalName"`
	EntitySetName         string `json:"EntitySetName"`
	PrimaryIdAttribute    string `json:"PrimaryIdAttribute"`
	ChangeTrackingEnabled bool   `json:"ChangeTrackingEnabled"`
	IsIntersect           bool   `json:"IsIntersect"`
}

const entitySelect = "$select=LogicalName,EntitySetName,PrimaryIdAttribute,ChangeTrackingEnabled,IsIntersect"

// Tables lists the tables the Web API can read (those with an entity set).
func (s *Source) Tables(ctx context.Context) ([]source.TableInfo, error) {
	var body struct {
		Value []entityDef `json:"value"`
	}
	if err := s.getJSON(ctx, "", apiPath+"EntityDefinitions?"+entitySelect, &body); err != nil {
		return nil, err
	}
	var out []source.TableInfo
	for _, d := range body.Value {
		if d.EntitySetName == "" || d.PrimaryIdAttribute == "" {
			continue
		}
		out = append(out, source.TableInfo{Name: d.LogicalName, Tracked: d.ChangeTrackingEnabled})
	}
	return out, nil
}

// getJSON GETs a metadata resource (path under the environment URL) into out.
func (s *Source) getJSON(ctx context.Context, table, path string, out any) error {
	return s.c.get(ctx, table, s.c.base+path, "", func(r io.Reader) error {
		if err := json.NewDecoder(r).Decode(out); err != nil {
			return &DecodeError{Table: table, Err: fmt.Errorf("metadata %s: %w", path, err)}
		}
		return nil
	})
}

// logicalName matches Dataverse logical names; checking it keeps a table
// name from reshaping a request URL.
var logicalName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Describe returns the table's columns, key and choice metadata.
func (s *Source) Describe(ctx context.Context, table string) (*schema.Table, error) {
	t, l, err := s.describe(ctx, table)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.layouts[table] = l
	s.mu.Unlock()
	return t, nil
}

// layout returns the table's wire layout, reading it on first use (one
// request; Describe's choice metadata is not needed to read rows).
func (s *Source) layout(ctx context.Context, table string) (*layout, error) {
	s.mu.Lock()
	l := s.layouts[table]
	s.mu.Unlock()
	if l != nil {
		return l, nil
	}
	l, _, _, err := s.readLayout(ctx, table)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.layouts[table] = l
	return l, nil
}

// prefer is the Prefer header of every data read: change tracking, the page
// size, and the annotation naming a lookup's target table.
func (s *Source) prefer() string {
	return fmt.Sprintf(`odata.track-changes,odata.maxpagesize=%d,odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`, s.cfg.PageSize)
}

// readPage GETs one page of a read of l's table at the relative link rel.
func (s *Source) readPage(ctx context.Context, l *layout, rel string, deleteVersion int64) (*page, error) {
	var p *page
	err := s.c.get(ctx, l.table, s.c.base+rel, s.prefer(), func(r io.Reader) error {
		var err error
		p, err = decodePage(r, l, deleteVersion)
		return err
	})
	return p, err
}
