package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuth: without a token 401, with a reader's token reads pass and
// changes are 403, an admin's token may do everything; every change,
// refused or not, is in the audit log with who made it.
func TestAuth(t *testing.T) {
	tmp := t.TempDir()
	tokens := filepath.Join(tmp, "tokens")
	admin, err := CreateToken(tokens, RoleAdmin, "ops")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := CreateToken(tokens, RoleReader, "grafana")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(tokens); strings.Contains(string(b), admin) || strings.Contains(string(b), reader) {
		t.Fatal("the tokens file holds a token, not its hash")
	}
	audit := filepath.Join(tmp, "audit.log")
	h := startHarness(t, Options{Tokens: tokens, AuditLog: audit})

	for _, c := range []struct {
		name, token  string
		method, path string
		body         any
		status       int
	}{
		{"no token", "", "GET", "/api/v1/links", nil, http.StatusUnauthorized},
		{"bad token", "llk_nope", "GET", "/api/v1/links", nil, http.StatusUnauthorized},
		{"no token change", "", "POST", "/api/v1/links", h.profile("a", "account"), http.StatusUnauthorized},
		{"reader reads", reader, "GET", "/api/v1/links", nil, http.StatusOK},
		{"reader metrics", reader, "GET", "/metrics", nil, http.StatusOK},
		{"reader creates", reader, "POST", "/api/v1/links", h.profile("a", "account"), http.StatusForbidden},
		{"admin creates", admin, "POST", "/api/v1/links", h.profile("a", "account"), http.StatusCreated},
		{"reader queries", reader, "POST", "/api/v1/links/a/sql", SQLRequest{SQL: "SELECT 1"}, http.StatusOK},
		{"reader deletes", reader, "DELETE", "/api/v1/links/a", nil, http.StatusForbidden},
		{"health is open", "", "GET", "/healthz", nil, http.StatusOK},
		{"openapi is open", "", "GET", "/api/v1/openapi.json", nil, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t, h.token = t, c.token
			if code, b := h.do(c.method, c.path, c.body); code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, b)
			}
		})
	}
	h.t, h.token = t, reader
	var who WhoAmI
	h.call("GET", "/api/v1/whoami", nil, http.StatusOK, &who)
	if who.Name != "grafana" || who.Role != RoleReader || !who.Auth {
		t.Fatalf("whoami: %+v", who)
	}

	f, err := os.Open(audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if e.Time.IsZero() || e.Remote == "" {
			t.Errorf("audit entry without time or remote: %+v", e)
		}
		got = append(got, e.Who+" "+e.Method+" "+e.Path+" "+http.StatusText(e.Status))
	}
	want := []string{
		"anonymous POST /api/v1/links Unauthorized",
		"grafana POST /api/v1/links Forbidden",
		"ops POST /api/v1/links Created",
		"grafana POST /api/v1/links/a/sql OK",
		"grafana DELETE /api/v1/links/a Forbidden",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestListenNeedsAuth: off loopback, serve refuses to start without
// tokens.
func TestListenNeedsAuth(t *testing.T) {
	for _, c := range []struct {
		addr     string
		loopback bool
	}{
		{"127.0.0.1:0", true}, {"[::1]:0", true}, {"localhost:8080", true},
		{"0.0.0.0:0", false}, {":8080", false}, {"192.0.2.1:80", false},
	} {
		if got := IsLoopback(c.addr); got != c.loopback {
			t.Errorf("IsLoopback(%q) = %v", c.addr, got)
		}
	}
	err := Run(context.Background(), Options{LinksDir: t.TempDir(), Listen: "0.0.0.0:0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "lakelink token create") {
		t.Fatalf("Run off loopback without tokens: %v", err)
	}
}
