// Package emulatortest starts a Dataverse emulator for other packages'
// tests: one call gives a running emulator on a test HTTP server, closed
// when the test ends. It lives apart from package emulator so that the
// emulator does not import testing.
package emulatortest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/emulator"
)

// Start opens an emulator with cfg (Dir defaults to a fresh temporary
// directory) behind an httptest server and returns it with the server's
// URL (the organization URL: the Web API is under URL+"/api/data/v9.2/").
// Server and emulator close on t.Cleanup; a failure to start fails t.
func Start(t testing.TB, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	e, err := emulator.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("emulatortest: start emulator: %v", err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := e.Close(); err != nil {
			t.Errorf("emulatortest: close emulator: %v", err)
		}
	})
	return e, srv.URL
}

// Server is an emulator on a fixed loopback port that a test can stop and
// start again, the way an environment goes away and comes back: Stop
// closes the listener, every open connection and the state directory;
// Restart reopens the same directory (same data, same delta-token
// history) and listens on the same address, so clients keep their URL.
type Server struct {
	t   testing.TB
	cfg emulator.Config
	// URL is the organization URL; it stays the same across restarts.
	URL  string
	addr string

	mu  sync.Mutex
	e   *emulator.Emulator
	srv *http.Server
}

// StartServer opens an emulator with cfg (Dir defaults to a fresh
// temporary directory) on a free loopback port. It is stopped on
// t.Cleanup; a failure to start fails t.
func StartServer(t testing.TB, cfg emulator.Config) *Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("emulatortest: listen: %v", err)
	}
	s := &Server{t: t, cfg: cfg, addr: ln.Addr().String()}
	s.URL = "http://" + s.addr
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Emulator returns the running emulator (a new one after each Restart);
// nil while stopped.
func (s *Server) Emulator() *emulator.Emulator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

// Stop closes the listener, drops every connection and closes the state
// directory. Clients get "connection refused" until Restart. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	if err := s.e.Close(); err != nil {
		s.t.Errorf("emulatortest: close emulator: %v", err)
	}
	s.srv, s.e = nil, nil
}

// Restart reopens the state directory and serves it on the same address
// again. The faults set before Stop are not kept (a new emulator starts
// with cfg.Faults).
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		s.t.Fatalf("emulatortest: Restart of a running server; Stop it first")
	}
	// The port was just released; another process may take it in between,
	// which a test cannot prevent, so retry briefly before giving up.
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("emulatortest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	s.t.Helper()
	e, err := emulator.Open(context.Background(), s.cfg)
	if err != nil {
		_ = ln.Close()
		s.t.Fatalf("emulatortest: start emulator: %v", err)
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.e, s.srv = e, srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}
