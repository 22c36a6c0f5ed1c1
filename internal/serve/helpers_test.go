package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// harness is a Service over a fresh links directory, behind a test HTTP
// server, next to a Dataverse emulator.
type harness struct {
	t      *testing.T
	s      *Service
	srv    *httptest.Server
	dir    string
	emuURL string
	emu    *emulator.Emulator
	// token goes with every request when set.
	token string
}

func startHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	emu, url := emulatortest.Start(t, emulator.Config{Scale: 20})
	if opts.LinksDir == "" {
		opts.LinksDir = filepath.Join(t.TempDir(), "links")
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("close the service: %v", err)
		}
	})
	return &harness{t: t, s: s, srv: srv, dir: opts.LinksDir, emuURL: url, emu: emu}
}

// profile is a valid profile of link name on the emulator.
func (h *harness) profile(name string, tables ...string) map[string]any {
	var ts []any
	for _, t := range tables {
		ts = append(ts, map[string]any{"name": t})
	}
	return map[string]any{
		"name":   name,
		"source": map[string]any{"type": "dataverse", "url": h.emuURL, "poll_interval": "200ms", "max_poll_interval": "1s"},
		"lake":   map[string]any{"path": "../lake/" + name},
		"tables": ts,
	}
}

// do sends a request (body: nil, []byte as is, or a value as JSON) and
// returns the status and body.
func (h *harness) do(method, path string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// call is do expecting status, decoding the answer into out (when not nil).
func (h *harness) call(method, path string, body any, status int, out any) {
	h.t.Helper()
	got, b := h.do(method, path, body)
	if got != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// problemOf sends a request expecting a problem of kind k.
func (h *harness) problemOf(method, path string, body any, k problemKind) Problem {
	h.t.Helper()
	got, b := h.do(method, path, body)
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil {
		h.t.Fatalf("%s %s: not a problem: %v: %s", method, path, err, b)
	}
	if got != k.status || p.Type != problemPrefix+k.slug || p.Status != got {
		h.t.Fatalf("%s %s: status %d type %s, want %d %s: %s", method, path, got, p.Type, k.status, problemPrefix+k.slug, b)
	}
	return p
}

// waitTables polls the link's tables until ok accepts them.
func (h *harness) waitTables(name string, what string, ok func([]TableInfo) bool) []TableInfo {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var rep TablesReport
	for time.Now().Before(deadline) {
		h.call("GET", "/api/v1/links/"+name+"/tables", nil, http.StatusOK, &rep)
		if ok(rep.Tables) {
			return rep.Tables
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("link %s: %s: not reached in 60s: %+v", name, what, rep.Tables)
	return nil
}

// allCompleted accepts tables that are exactly names, each Completed.
func allCompleted(names ...string) func([]TableInfo) bool {
	return func(ts []TableInfo) bool {
		if len(ts) != len(names) {
			return false
		}
		for i, t := range ts {
			if t.Name != names[i] || t.State != engine.Completed {
				return false
			}
		}
		return true
	}
}
