package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/tools/demo"
)

// TestLinkLifecycle walks a link through every operation: create, list,
// tables reaching Completed, a change at the source arriving, add and
// remove a table, pause, resume, reinit, SQL, source browsing, delete.
func TestLinkLifecycle(t *testing.T) {
	h := startHarness(t, Options{})
	var d LinkDetail
	h.call("POST", "/api/v1/links", h.profile("sales", "account", "contact"), http.StatusCreated, &d)
	if d.Name != "sales" || d.SourceType != "dataverse" || d.Tables != 2 {
		t.Fatalf("created: %+v", d)
	}
	// The profile is the file lakelink sync -c reads.
	p, err := config.Load(filepath.Join(h.dir, "sales.yaml"))
	if err != nil {
		t.Fatalf("the written profile does not load: %v", err)
	}
	if len(p.Tables) != 2 || p.Source.URL != h.emuURL {
		t.Fatalf("written profile: %+v", p)
	}
	var list LinkList
	h.call("GET", "/api/v1/links", nil, http.StatusOK, &list)
	if len(list.Links) != 1 || list.Links[0].Name != "sales" {
		t.Fatalf("list: %+v", list)
	}
	tables := h.waitTables("sales", "every table Completed", allCompleted("account", "contact"))
	for _, tb := range tables {
		if tb.Rows == 0 || tb.LastSynchronized.IsZero() || tb.Format != lakeFormat {
			t.Errorf("table %s: %+v", tb.Name, tb)
		}
	}

	// A change at the source shows in the table's rows.
	before := tables[0].Rows
	c := &demo.Client{URL: h.emuURL}
	if _, err := c.Create(context.Background(), "accounts", map[string]any{"name": "Serve Test"}); err != nil {
		t.Fatal(err)
	}
	h.waitTables("sales", "the new account counted", func(ts []TableInfo) bool { return len(ts) == 2 && ts[0].Rows == before+1 })

	var res SQLResult
	h.call("POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "SELECT name FROM account WHERE name = 'Serve Test'"}, http.StatusOK, &res)
	if len(res.Rows) != 1 || res.Rows[0][0] != "Serve Test" || res.Columns[0].Name != "name" || res.Truncated {
		t.Fatalf("sql: %+v", res)
	}
	h.call("POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "SELECT * FROM contact", Limit: 3}, http.StatusOK, &res)
	if len(res.Rows) != 3 || !res.Truncated {
		t.Fatalf("sql with limit 3: %d rows, truncated %v", len(res.Rows), res.Truncated)
	}

	var st SourceTables
	h.call("GET", "/api/v1/links/sales/source/tables", nil, http.StatusOK, &st)
	linked := 0
	for _, tb := range st.Tables {
		if tb.Linked {
			linked++
		}
	}
	if len(st.Tables) < 3 || linked != 2 {
		t.Fatalf("source tables: %d, %d linked: %+v", len(st.Tables), linked, st.Tables)
	}

	h.call("POST", "/api/v1/links/sales/tables", map[string]any{"name": "opportunity", "partition": "month"}, http.StatusOK, &d)
	h.waitTables("sales", "opportunity added", allCompleted("account", "contact", "opportunity"))
	h.call("DELETE", "/api/v1/links/sales/tables/contact", nil, http.StatusOK, &d)
	h.waitTables("sales", "contact removed", allCompleted("account", "opportunity"))

	var a ActionResult
	h.call("POST", "/api/v1/links/sales/pause", nil, http.StatusOK, &a)
	if a.State != Paused {
		t.Fatalf("pause: %+v", a)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "sales.paused")); err != nil {
		t.Fatalf("no pause marker: %v", err)
	}
	h.call("POST", "/api/v1/links/sales/resume", nil, http.StatusOK, &a)
	h.call("POST", "/api/v1/links/sales/tables/account/reinit", nil, http.StatusAccepted, &a)
	h.waitTables("sales", "Completed after the reinit", allCompleted("account", "opportunity"))

	ready := time.Now().Add(30 * time.Second)
	for code, b := h.do("GET", "/readyz", nil); code != http.StatusOK; code, b = h.do("GET", "/readyz", nil) {
		if time.Now().After(ready) {
			t.Fatalf("readyz: %d %s", code, b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var u Unlinked
	h.call("DELETE", "/api/v1/links/sales?delete_data=true", nil, http.StatusOK, &u)
	if !u.DataDeleted {
		t.Fatalf("delete: %+v", u)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "sales.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the profile is still there: %v", err)
	}
	h.call("GET", "/api/v1/links", nil, http.StatusOK, &list)
	if len(list.Links) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
}

// TestBadInput: every refusal is a problem+json with its stable type;
// an invalid profile lists each field with the CLI's own message.
func TestBadInput(t *testing.T) {
	h := startHarness(t, Options{})
	h.call("POST", "/api/v1/links", h.profile("sales", "account"), http.StatusCreated, nil)
	h.waitTables("sales", "Completed", allCompleted("account"))

	noURL := h.profile("broken", "account")
	delete(noURL["source"].(map[string]any), "url")
	big := bytes.Repeat([]byte(" "), maxBody+1)
	dup := h.profile("other", "account")
	dup["lake"] = map[string]any{"path": "../lake/sales"}
	renamed := h.profile("elsewhere", "account")
	for _, c := range []struct {
		name         string
		method, path string
		body         any
		kind         problemKind
	}{
		{"unknown link", "GET", "/api/v1/links/nope", nil, errUnknownLink},
		{"unknown link tables", "GET", "/api/v1/links/nope/tables", nil, errUnknownLink},
		{"unknown link put", "PUT", "/api/v1/links/nope", h.profile("nope", "account"), errUnknownLink},
		{"unknown link delete", "DELETE", "/api/v1/links/nope", nil, errUnknownLink},
		{"unknown link sql", "POST", "/api/v1/links/nope/sql", SQLRequest{SQL: "SELECT 1"}, errUnknownLink},
		{"unknown table reinit", "POST", "/api/v1/links/sales/tables/nope/reinit", nil, errUnknownTable},
		{"unknown table remove", "DELETE", "/api/v1/links/sales/tables/nope", nil, errUnknownTable},
		{"duplicate name", "POST", "/api/v1/links", h.profile("sales", "account"), errDuplicateLink},
		{"lake of another link", "POST", "/api/v1/links", dup, errLakeTaken},
		{"rename through put", "PUT", "/api/v1/links/sales", renamed, errNameMismatch},
		{"not json", "POST", "/api/v1/links", []byte("{nope"), errBadRequest},
		{"empty body", "POST", "/api/v1/links", []byte(""), errBadRequest},
		{"oversized body", "POST", "/api/v1/links", big, errTooLarge},
		{"oversized sql", "POST", "/api/v1/links/sales/sql", append(append([]byte(`{"sql":"`), big...), `"}`...), errTooLarge},
		{"unknown sql field", "POST", "/api/v1/links/sales/sql", []byte(`{"query":"SELECT 1"}`), errBadRequest},
		{"bad delete_data", "DELETE", "/api/v1/links/sales?delete_data=maybe", nil, errBadRequest},
		{"sql limit", "POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "SELECT 1", Limit: -1}, errBadRequest},
		{"sql that writes", "POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "CREATE TABLE x AS SELECT 1"}, errSQLNotAllowed},
		{"sql that copies out", "POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "COPY (SELECT 1) TO '/tmp/x.csv'"}, errSQLNotAllowed},
		{"sql outside the lake", "POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "SELECT * FROM read_csv('/etc/passwd')"}, errSQLFailed},
		{"sql that fails", "POST", "/api/v1/links/sales/sql", SQLRequest{SQL: "SELECT * FROM nosuchtable"}, errSQLFailed},
		{"unreachable source", "POST", "/api/v1/sources/tables", map[string]any{"type": "dataverse", "url": "http://127.0.0.1:1"}, errUnreachable},
		{"invalid source", "POST", "/api/v1/sources/tables", map[string]any{"type": "oracle"}, errInvalidProfile},
		{"wrong method", "PATCH", "/api/v1/links/sales", nil, errMethod},
		{"no such operation", "GET", "/api/v1/nothing", nil, errNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.problemOf(c.method, c.path, c.body, c.kind)
		})
	}
	h.t = t

	// The invalid profile's problem carries the CLI's messages, field by
	// field.
	p := h.problemOf("POST", "/api/v1/links", noURL, errInvalidProfile)
	text, _ := json.Marshal(noURL)
	_, cliErr := config.Parse(filepath.Join(h.dir, "broken.yaml"), text)
	var ce *config.Error
	if !errors.As(cliErr, &ce) {
		t.Fatalf("config.Parse: %v", cliErr)
	}
	if len(p.Errors) != 1 || p.Errors[0].Field != "source.url" || p.Errors[0].Message != ce.Msg {
		t.Fatalf("invalid profile: %+v, the CLI says %v", p.Errors, cliErr)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "broken.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an invalid profile was written")
	}
	// The running link went on through all of it.
	h.waitTables("sales", "still Completed", allCompleted("account"))
}

// TestOneLinkFailing: a link whose source is down is Retrying with its
// error, not ready, and the other link syncs; its secret is never
// returned.
func TestOneLinkFailing(t *testing.T) {
	h := startHarness(t, Options{})
	bad := map[string]any{
		"name":   "shop",
		"source": map[string]any{"type": "postgres", "dsn": "postgres://app:s3cret-pw@127.0.0.1:1/shop?sslmode=disable"},
		"lake":   map[string]any{"path": "../lake/shop"},
		"tables": []any{map[string]any{"name": "public.orders"}},
	}
	h.call("POST", "/api/v1/links", bad, http.StatusCreated, nil)
	h.call("POST", "/api/v1/links", h.profile("sales", "account"), http.StatusCreated, nil)
	h.waitTables("sales", "Completed beside a failing link", allCompleted("account"))

	var d LinkDetail
	deadline := time.Now().Add(30 * time.Second)
	for d.State != Retrying && time.Now().Before(deadline) {
		h.call("GET", "/api/v1/links/shop", nil, http.StatusOK, &d)
		time.Sleep(100 * time.Millisecond)
	}
	if d.State != Retrying || d.Error == "" {
		t.Fatalf("failing link: %+v", d.LinkSummary)
	}
	_, b := h.do("GET", "/api/v1/links/shop", nil)
	_, lb := h.do("GET", "/api/v1/links", nil)
	if bytes.Contains(b, []byte("s3cret-pw")) || bytes.Contains(lb, []byte("s3cret-pw")) {
		t.Fatalf("the password is in an answer: %s", b)
	}
	if d.Secrets["source.dsn.password"] != "set" {
		t.Fatalf("secrets: %+v", d.Secrets)
	}
	// A PUT of what GET returned keeps the password.
	d.Profile["sync"] = map[string]any{"workers": 2}
	h.call("PUT", "/api/v1/links/shop", map[string]any(d.Profile), http.StatusOK, nil)
	p, err := config.Load(filepath.Join(h.dir, "shop.yaml"))
	if err != nil || !strings.Contains(p.Source.DSN, "s3cret-pw") || p.Sync.Workers != 2 {
		t.Fatalf("after PUT: %v %+v", err, p)
	}
	var health Health
	h.call("GET", "/readyz", nil, http.StatusServiceUnavailable, &health)
	if _, ok := health.NotReady["shop"]; !ok || len(health.NotReady) != 1 {
		t.Fatalf("readyz: %+v", health)
	}
	h.call("GET", "/healthz", nil, http.StatusOK, nil)
}

// TestInvalidProfileInDir: a profile file that does not load is listed
// as Invalid with the CLI's message; a PUT replaces it and starts it.
func TestInvalidProfileInDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "links")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sales.yaml"), []byte("name: sales\nsource:\n  type: dataverse\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, Options{LinksDir: dir})
	var d LinkDetail
	h.call("GET", "/api/v1/links/sales", nil, http.StatusOK, &d)
	_, cliErr := config.Load(filepath.Join(dir, "sales.yaml"))
	if d.State != Invalid || d.Error != cliErr.Error() {
		t.Fatalf("invalid link: %+v, CLI: %v", d.LinkSummary, cliErr)
	}
	h.call("PUT", "/api/v1/links/sales", h.profile("sales", "account"), http.StatusOK, nil)
	h.waitTables("sales", "Completed after the fix", allCompleted("account"))
}

// TestOpenAPI: the document has every route with its types' schemas.
func TestOpenAPI(t *testing.T) {
	h := startHarness(t, Options{})
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
				Enum       []string       `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	h.call("GET", "/api/v1/openapi.json", nil, http.StatusOK, &doc)
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, rt := range h.s.routes() {
		if _, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]; !ok {
			t.Errorf("%s %s is not in the document", rt.method, rt.path)
		}
	}
	for schema, fields := range map[string][]string{
		"TableInfo":    {"name", "state", "rows", "last_synchronized", "lag_seconds", "error", "format"},
		"config.Link":  {"name", "source", "lake", "tables", "snapshots", "sync"},
		"config.Table": {"name", "append_only", "partition"},
		"Problem":      {"type", "title", "status", "detail", "errors"},
		"SQLResult":    {"columns", "rows", "truncated", "elapsed_ms"},
		"LinkDetail":   {"name", "state", "profile", "secrets"},
	} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Errorf("no schema %s", schema)
			continue
		}
		for _, f := range fields {
			if _, ok := s.Properties[f]; !ok {
				t.Errorf("schema %s has no %s: %v", schema, f, s.Properties)
			}
		}
	}
	if n := len(doc.Components.Schemas["ProblemTypes"].Enum); n != len(problemKinds) {
		t.Errorf("ProblemTypes lists %d types, want %d", n, len(problemKinds))
	}
}

// TestStatesAsStatusNames: the tables' states are lakelink status's names.
func TestStatesAsStatusNames(t *testing.T) {
	h := startHarness(t, Options{})
	h.call("POST", "/api/v1/links", h.profile("sales", "account"), http.StatusCreated, nil)
	ts := h.waitTables("sales", "Completed", allCompleted("account"))
	if ts[0].State != engine.Completed {
		t.Fatal(ts)
	}
	_, b := h.do("GET", "/api/v1/links/sales/tables", nil)
	if !bytes.Contains(b, []byte(`"state": "Completed"`)) {
		t.Fatalf("tables: %s", b)
	}
}
