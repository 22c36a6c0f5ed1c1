package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fixedNow is the clock of tests that compare tokens or timestamps.
var fixedNow = time.Date(2026, 4, 14, 20, 21, 50, 0, time.UTC)

type env struct {
	e   *Emulator
	srv *httptest.Server
	api string
}

func start(t testing.TB, cfg Config) *env {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	e, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open emulator: %v", err)
	}
	e.now = func() time.Time { return fixedNow }
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &env{e: e, srv: srv, api: srv.URL + apiPrefix}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; path is relative to the Web API root unless it starts
// with http or /. A failure to talk to the server fails t.
func (v *env) do(t testing.TB, method, path, body string, hdr ...string) answer {
	t.Helper()
	a, err := v.send(method, path, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send is do for goroutines other than the test's.
func (v *env) send(method, path, body string, hdr ...string) (answer, error) {
	u := v.api + path
	switch {
	case strings.HasPrefix(path, "http"):
		u = path
	case strings.HasPrefix(path, "/"):
		u = v.srv.URL + path
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, b}, nil
}

// page is a decoded collection answer.
type page struct {
	Value     []map[string]any `json:"value"`
	NextLink  string           `json:"@odata.nextLink"`
	DeltaLink string           `json:"@odata.deltaLink"`
}

func decodePage(t testing.TB, a answer) page {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var p page
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("decode page: %v\n%s", err, a.body)
	}
	return p
}
