// Package serve is lakelink serve: one long-running process that runs
// every link of a links directory, each with its own engine, source and
// lake, and offers them over HTTP: a JSON API under /api/v1 (with its
// OpenAPI document), a web UI, Prometheus metrics, health and readiness.
//
// Invariants:
//   - One link's failure never stops another: each runs in its own
//     goroutine (runner) and is opened again after a back-off.
//   - The links directory is the truth: every link is a profile file there,
//     the same YAML lakelink sync -c reads, written atomically by the API.
//   - Secrets in profiles never leave the process through the API.
//   - Off a loopback address, every request but health, readiness and the
//     OpenAPI document needs a bearer token (serve refuses to start
//     without a tokens file), and every change is in the audit log.
//
// docs/serve.md is the user's guide.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/metrics"
)

// Options configure a Service.
type Options struct {
	// LinksDir holds the link profiles, one <name>.yaml per link.
	LinksDir string
	// Listen is the HTTP listen address (Run only).
	Listen string
	// TLSCert and TLSKey make Run serve HTTPS.
	TLSCert, TLSKey string
	// Tokens is the file of hashed tokens; "" turns access control off,
	// which Run allows on a loopback address only.
	Tokens string
	// AuditLog is the audit log file; default audit.log in LinksDir.
	AuditLog string
	// TrustProxy takes client addresses from X-Forwarded-For.
	TrustProxy bool
	Logger     *slog.Logger
}

// Service runs the links of a directory and serves the API.
type Service struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	links map[string]*runner

	tokens  *tokenFile // nil: access control off
	audit   *audit
	history *history
	metrics *metrics.Registry
	mux     *http.ServeMux
}

// New loads the links directory and the tokens file and builds the HTTP
// handler; Start starts the links.
func New(opts Options) (*Service, error) {
	if opts.LinksDir == "" {
		return nil, errors.New("serve: no links directory: give --dir DIR or links_dir in the --config file")
	}
	if opts.Logger == nil {
		opts.Logger = discard
	}
	if opts.AuditLog == "" {
		opts.AuditLog = filepath.Join(opts.LinksDir, "audit.log")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel, links: map[string]*runner{}}
	if err := s.loadDir(); err != nil {
		cancel()
		return nil, err
	}
	if opts.Tokens != "" {
		t, err := loadTokens(opts.Tokens)
		if err != nil {
			cancel()
			return nil, err
		}
		s.tokens = t
	}
	a, err := openAudit(opts.AuditLog)
	if err != nil {
		cancel()
		return nil, err
	}
	s.audit = a
	s.history = newHistory()
	s.metrics = metrics.New(s.metricLinks)
	s.mux = s.buildMux()
	return s, nil
}

// instrument is what decorates each link's source for the metrics.
func (s *Service) instrument(name string) link.Instrument { return s.metrics.Instrument(name) }

// metricLinks is what the metrics collector reads at each scrape.
func (s *Service) metricLinks() []metrics.Link {
	var out []metrics.Link
	for _, r := range s.sortedRunners() {
		r.mu.Lock()
		m := metrics.Link{Name: r.name, Running: r.l != nil}
		if r.l != nil {
			m.Engine, m.Health = r.l.Engine, metrics.Health(r.l.Source)
		}
		r.mu.Unlock()
		out = append(out, m)
	}
	return out
}

// buildMux registers every route, a problem+json 405 for the other
// methods of each path and a problem+json 404 under /api/.
func (s *Service) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	paths := map[string]bool{}
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.guard(rt.role, rt.handler))
		if !paths[rt.path] {
			paths[rt.path] = true
			mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
				writeProblem(w, r, problem(errMethod, "%s is not allowed on %s (see /api/v1/openapi.json)", r.Method, r.URL.Path))
			})
		}
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem(errNotFound, "no API operation at %s (see /api/v1/openapi.json)", r.URL.Path))
	})
	return mux
}

// Handler is the service's HTTP handler.
func (s *Service) Handler() http.Handler { return s.mux }

// Start starts every link that is not paused, and the history sampler.
func (s *Service) Start() {
	s.startAll()
	go s.history.sample(s.ctx, s)
}

// Close stops every link (each commits what it has in flight, as
// lakelink sync does on SIGTERM) and closes the audit log.
func (s *Service) Close() error {
	s.stopAll()
	s.cancel()
	return s.audit.close()
}

// shutdownGrace bounds how long Run waits for requests in progress when
// it stops.
const shutdownGrace = 10 * time.Second

// Run serves until ctx ends, then stops gracefully: requests in progress
// finish (up to shutdownGrace), then every link commits what it has in
// flight and stops. ready, when set, receives the bound address.
func Run(ctx context.Context, opts Options, ready func(addr string)) error {
	if opts.Tokens == "" && !IsLoopback(opts.Listen) {
		return fmt.Errorf("serve: %s is not a loopback address and %w: create a token (lakelink token create --role admin --file tokens) and pass --tokens tokens", opts.Listen, errNoAuth)
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return errors.New("serve: give --tls-cert and --tls-key together")
	}
	s, err := New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("serve: listen: %w", err)
	}
	s.Start()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() {
		if opts.TLSCert != "" {
			errc <- srv.ServeTLS(ln, opts.TLSCert, opts.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if opts.TLSCert != "" {
		scheme = "https"
	}
	s.log.Info("serve: listening", "url", scheme+"://"+ln.Addr().String(), "links", len(s.sortedRunners()), "auth", s.tokens != nil)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	serr := srv.Shutdown(sctx)
	s.log.Info("serve: stopping the links")
	cerr := s.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, serr, cerr)
}

// readFile reads a profile file.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return b, nil
}
