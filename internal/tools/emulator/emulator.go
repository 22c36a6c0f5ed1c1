// Package emulator is a local stand-in for a Dataverse environment: the part
// of the Dataverse Web API v9.2 that a sync and a simple client use (table
// metadata, CRUD, change tracking with delta links), over the tables of the
// Dynamics 365 Sales sample, with deterministic sample data, fault injection
// and persistence in a state directory. It powers lakelink demo, the
// end-to-end tests and the benchmarks; docs/emulator.md lists what differs
// from the real service.
package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Config configures an emulator.
type Config struct {
	Dir   string // state directory; created if missing; data persists across restarts
	Scale int    // rows per main table generated at first start (when Dir holds no data); 0 = default 1000
	Seed  int64  // sample data seed; same seed+scale => same data, ids included
	// Token, if set, must come with every /api request as
	// "Authorization: Bearer <Token>"; others are answered 401.
	Token  string
	Faults Faults
	Logger *slog.Logger // nil = discard

	// Counts overrides the generated row count of tables by logical name
	// (say {"contact": 1000000} for one big table).
	Counts map[string]int
	// ExtraTables adds that many small custom tables (ExtraTableName),
	// ExtraRows rows each, for benchmarks of many tables.
	ExtraTables int
	ExtraRows   int
}

// Faults are the failures the emulator injects into /api requests.
type Faults struct {
	// ThrottleRate is the fraction of requests answered 429 with Retry-After.
	ThrottleRate float64 `json:"throttle_rate"`
	// RetryAfter is the Retry-After value (seconds, rounded up); 0 means 1s.
	RetryAfter time.Duration `json:"retry_after"`
	// ErrorRate is the fraction answered 503 or 500 with an OData error body.
	ErrorRate float64 `json:"error_rate"`
	// Latency is added to every answer.
	Latency time.Duration `json:"latency"`
	// TokenMaxAge rejects delta tokens older than it as expired; 0 = never.
	TokenMaxAge time.Duration `json:"token_max_age"`
}

// DefaultScale is the number of rows per main table when Config.Scale is 0.
const DefaultScale = 1000

// Emulator is a running emulated environment. Its handler is safe for
// concurrent use.
type Emulator struct {
	cfg    Config
	log    *slog.Logger
	db     *bolt.DB
	tables []*table
	byName map[string]*table
	bySet  map[string]*table
	global map[string]*optionSet
	// layout places the generated rows of each table; seed generates them.
	layout map[string]tableLayout
	seed   int64
	// generated is the highest version of a generated row: every issued
	// delta token is at least this.
	generated uint64
	// callerID is the systemuser requests act as (WhoAmI, default owner).
	callerID uuid.UUID
	orgID    uuid.UUID
	buID     uuid.UUID

	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand

	stats stats
	now   func() time.Time
}

type stats struct {
	requests, throttled, failed, unauthorized, reads, writes, rows atomic.Int64
}

// Open opens the state directory, laying out the sample data (Scale, Seed,
// Counts, ExtraTables) when it holds none, and returns an emulator ready to
// serve. A directory that holds data keeps it, whatever cfg says.
func Open(ctx context.Context, cfg Config) (*Emulator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("emulator: Config.Dir is empty; give a state directory")
	}
	if cfg.Scale < 0 || cfg.ExtraTables < 0 || cfg.ExtraRows < 0 {
		return nil, fmt.Errorf("emulator: scale %d, extra tables %d, extra rows %d: none may be negative", cfg.Scale, cfg.ExtraTables, cfg.ExtraRows)
	}
	if cfg.Scale == 0 {
		cfg.Scale = DefaultScale
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("emulator: create state directory: %w", err)
	}
	path := filepath.Join(cfg.Dir, "emulator.db")
	// NoSync: a write is in the OS page cache when the request returns, so
	// the emulator being killed loses nothing; only a machine crash can,
	// which an emulator may accept in exchange for fast writes.
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 2 * time.Second, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("emulator: open %s (is another emulator using this directory?): %w", path, err)
	}
	tables := catalog()
	for i := range cfg.ExtraTables {
		tables = append(tables, extraTable(i))
	}
	e := &Emulator{cfg: cfg, log: log, db: db, tables: tables, faults: cfg.Faults, now: time.Now,
		byName: map[string]*table{}, bySet: map[string]*table{}, global: map[string]*optionSet{},
		rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))}
	for _, t := range e.tables {
		e.byName[t.Name] = t
		e.bySet[t.SetName] = t
		for _, a := range t.Attrs {
			if a.Options != nil && a.Options.Global {
				e.global[a.Options.Name] = a.Options
			}
		}
	}
	for name, n := range cfg.Counts {
		if _, ok := e.byName[name]; !ok || n < 0 {
			_ = db.Close()
			return nil, fmt.Errorf("emulator: Counts[%q] = %d: give a non-negative count of one of the tables %s", name, n, strings.Join(e.tableNames(), ", "))
		}
	}
	if err := e.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return e, nil
}

// load reads the layout of the generated rows, laying it out on first
// start. The layout, not the Config, is authoritative afterwards: a state
// directory keeps its data whatever scale it is reopened with.
func (e *Emulator) load() error {
	var seed int64
	err := e.db.Update(func(tx *bolt.Tx) error {
		if err := createBuckets(tx, e.tables); err != nil {
			return err
		}
		meta := tx.Bucket(metaBucket)
		if s := meta.Get(seedKey); s != nil {
			if _, err := fmt.Sscan(string(s), &seed); err != nil {
				return fmt.Errorf("seed %q: %w", s, err)
			}
			return json.Unmarshal(meta.Get(layoutKey), &e.layout)
		}
		seed = e.cfg.Seed
		layout, version := newLayout(e.cfg, e.tables)
		b, err := json.Marshal(layout)
		if err != nil {
			return err
		}
		e.layout = layout
		for name, l := range layout {
			if err := meta.Put([]byte("next."+name), u64(l.Count)); err != nil {
				return err
			}
		}
		if err := meta.Put(layoutKey, b); err != nil {
			return err
		}
		if err := meta.Put(versionKey, u64(version)); err != nil {
			return err
		}
		return meta.Put(seedKey, []byte(strconv.FormatInt(seed, 10)))
	})
	if err != nil {
		return fmt.Errorf("emulator: read state in %s (delete the directory to start afresh): %w", e.cfg.Dir, err)
	}
	if seed != e.cfg.Seed {
		e.log.Warn("emulator: state directory holds data of another seed; keeping it", "dir", e.cfg.Dir, "seed", seed)
	}
	e.seed = seed
	for _, l := range e.layout {
		if l.Count > 0 {
			e.generated = max(e.generated, l.First+l.Count-1)
		}
	}
	for _, t := range e.tables {
		if _, ok := e.layout[t.Name]; !ok {
			// A table added since the directory was created: no sample rows.
			e.layout[t.Name] = tableLayout{Base: idBase(seed, t.Name)}
		}
	}
	e.callerID = seqID(e.layout["systemuser"].Base, 0)
	e.orgID = uuid.NewSHA1(metadataNS, fmt.Appendf(nil, "organization/%d", seed))
	e.buID = uuid.NewSHA1(metadataNS, fmt.Appendf(nil, "businessunit/%d", seed))
	return nil
}

func (e *Emulator) tableNames() []string {
	names := make([]string, len(e.tables))
	for i, t := range e.tables {
		names[i] = t.Name
	}
	return names
}

// SetFaults replaces the faults injected from now on.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	e.faults = f
	e.mu.Unlock()
}

func (e *Emulator) currentFaults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults
}

// Close closes the state directory; the data stays for the next Open.
func (e *Emulator) Close() error {
	if err := e.db.Sync(); err != nil {
		_ = e.db.Close()
		return fmt.Errorf("emulator: sync state: %w", err)
	}
	return e.db.Close()
}

// Handler serves /api/data/v9.2/... (the Web API) and /admin/... (faults
// and statistics).
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/data/v9.2/", e.serveAPI)
	mux.HandleFunc("GET /admin/faults", e.getFaults)
	mux.HandleFunc("PUT /admin/faults", e.putFaults)
	mux.HandleFunc("GET /admin/stats", e.getStats)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errSegment(r.URL.Path))
	})
	return mux
}

// inject decides the fault of one request; it reports whether the request
// was answered.
func (e *Emulator) inject(w http.ResponseWriter, r *http.Request) bool {
	f := e.currentFaults()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	if f.ThrottleRate <= 0 && f.ErrorRate <= 0 {
		return false
	}
	e.mu.Lock()
	p, q, coin := e.rng.Float64(), e.rng.Float64(), e.rng.IntN(2)
	e.mu.Unlock()
	if p < f.ThrottleRate {
		e.stats.throttled.Add(1)
		ra := f.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		secs := int64((ra + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		writeError(w, &apiError{http.StatusTooManyRequests, codeThrottled,
			"Number of requests exceeded the limit of 6000 over time window of 300 seconds."})
		return true
	}
	if q < f.ErrorRate {
		e.stats.failed.Add(1)
		status := http.StatusServiceUnavailable
		if coin == 1 {
			status = http.StatusInternalServerError
		}
		writeError(w, &apiError{status, codeUnexpected, "An unexpected error occurred."})
		return true
	}
	return false
}

// authorized checks the bearer token. Dataverse answers a request without
// a valid token 401 with an empty body and a WWW-Authenticate challenge
// naming the authority and the resource; the emulator does the same.
func (e *Emulator) authorized(w http.ResponseWriter, r *http.Request) bool {
	if e.cfg.Token == "" || r.Header.Get("Authorization") == "Bearer "+e.cfg.Token {
		return true
	}
	e.stats.unauthorized.Add(1)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(
		"Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize, resource_id=%s", baseOrigin(r)))
	w.WriteHeader(http.StatusUnauthorized)
	return false
}

func baseOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// drain reads what is left of a request body so the connection is reused.
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
}
