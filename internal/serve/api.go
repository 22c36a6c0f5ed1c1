package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/sqldb"
)

// ProfileBody is a link profile sent to the API: a JSON object with the
// keys of the YAML profile (docs/serve.md). It is validated by the same
// code as a profile file, so the messages are the CLI's.
type ProfileBody struct{ raw []byte }

func (b *ProfileBody) setRaw(p []byte)        { b.raw = p }
func (*ProfileBody) schemaType() reflect.Type { return reflect.TypeFor[config.Link]() }
func (*TableBody) schemaType() reflect.Type   { return reflect.TypeFor[config.Table]() }
func (b *TableBody) setRaw(p []byte)          { b.raw = p }
func (*SourceBody) schemaType() reflect.Type  { return reflect.TypeFor[config.Source]() }
func (b *SourceBody) setRaw(p []byte)         { b.raw = p }
func (ProfileView) schemaType() reflect.Type  { return reflect.TypeFor[config.Link]() }

// TableBody is one table to add to a link: the keys of a profile's
// tables entry.
type TableBody struct{ raw []byte }

// SourceBody is a profile's source section, for a connection test.
type SourceBody struct{ raw []byte }

// ProfileView is a link's profile as its file holds it, as JSON, with the
// password of a connection string taken out (Secrets says it is set).
type ProfileView map[string]any

// LinkSummary is one link of the list.
type LinkSummary struct {
	Name string `json:"name"`
	// State is the link's as a whole; its tables have their own.
	State RunState  `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Error is why the link is Retrying or Invalid.
	Error      string `json:"error,omitempty"`
	SourceType string `json:"source_type,omitempty"`
	Lake       string `json:"lake,omitempty"`
	Tables     int    `json:"tables"`
	// TableStates counts the running engine's tables by state.
	TableStates map[engine.State]int `json:"table_states,omitempty"`
}

// LinkList is GET /api/v1/links.
type LinkList struct {
	Links []LinkSummary `json:"links"`
}

// LinkDetail is one link with its profile.
type LinkDetail struct {
	LinkSummary
	Profile ProfileView `json:"profile,omitempty"`
	// Secrets names each secret of the profile that is set; the secret
	// itself is never returned.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// Unlinked is the answer to DELETE /api/v1/links/{name}.
type Unlinked struct {
	Link        string `json:"link"`
	DataDeleted bool   `json:"data_deleted"`
}

// ActionResult is the answer to an action (pause, resume, reinit).
type ActionResult struct {
	Link   string   `json:"link"`
	Action string   `json:"action"`
	Table  string   `json:"table,omitempty"`
	State  RunState `json:"state"`
}

// TableInfo is one table of a link, as lakelink status shows it.
type TableInfo struct {
	engine.TableStatus
	// Format is the lake's table format.
	Format string `json:"format"`
}

// TablesReport is GET /api/v1/links/{name}/tables: lakelink status --json
// of the link's lake.
type TablesReport struct {
	Link string `json:"link"`
	// Running is true while a sync (this service's or another process's)
	// reports on the lake.
	Running     bool            `json:"running"`
	Tables      []TableInfo     `json:"tables"`
	Maintenance *engine.Problem `json:"maintenance,omitempty"`
	Warnings    []string        `json:"warnings,omitempty"`
}

// SourceTable is one table a source offers.
type SourceTable struct {
	Name string `json:"name"`
	// Tracked is false when change tracking is off: the table cannot be
	// linked until it is turned on.
	Tracked bool `json:"tracked"`
	// Linked is set for tables the link has already.
	Linked bool `json:"linked,omitempty"`
}

// SourceTables is the list of a source's tables (the new-link wizard's
// table picker).
type SourceTables struct {
	Tables []SourceTable `json:"tables"`
}

// SQLRequest is a query on a link's lake database.
type SQLRequest struct {
	SQL string `json:"sql"`
	// Limit bounds the rows returned (default 1000, at most 100000).
	Limit int `json:"limit,omitempty"`
	// TimeoutMS bounds the run time (default 30000, at most 600000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// SQLResult is a query's result.
type SQLResult struct {
	sqldb.Result
	// ElapsedMS is the query's run time.
	ElapsedMS float64 `json:"elapsed_ms"`
}

// Health is /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	// NotReady names each link whose engine did not start, with why.
	NotReady map[string]string `json:"not_ready,omitempty"`
}

// WhoAmI says who the request's token is.
type WhoAmI struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Auth is false when access control is off (loopback only).
	Auth bool `json:"auth"`
}

// SQL limits.
const (
	defaultRowLimit = 1000
	maxRowLimit     = 100_000
	defaultTimeout  = 30 * time.Second
	maxTimeout      = 10 * time.Minute
)

// sourceTimeout bounds a connection test or a listing of a source's tables.
const sourceTimeout = 30 * time.Second

// routes is the API: every operation, its role, its types.
func (s *Service) routes() []route {
	return []route{
		jsonRoute("GET", "/api/v1/links", "List the links with their states", RoleReader, http.StatusOK, s.listLinks),
		jsonRoute("POST", "/api/v1/links", "Create a link from a profile; it starts at once", RoleAdmin, http.StatusCreated, s.createLink),
		jsonRoute("GET", "/api/v1/links/{name}", "A link with its profile (secrets left out)", RoleReader, http.StatusOK, s.getLink),
		jsonRoute("PUT", "/api/v1/links/{name}", "Replace a link's profile: a table list change applies at once, other changes restart the link", RoleAdmin, http.StatusOK, s.putLink),
		jsonRoute("DELETE", "/api/v1/links/{name}", "Unlink: stop the link, remove its state from the lake and its profile; delete_data=true removes the data too", RoleAdmin, http.StatusOK, s.deleteLink).
			withQuery(queryParam{"delete_data", "boolean", "also delete the lake's data files"}),
		jsonRoute("GET", "/api/v1/links/{name}/tables", "Every table's state, rows, last synchronized on, lag, last error (lakelink status)", RoleReader, http.StatusOK, s.linkTables),
		jsonRoute("POST", "/api/v1/links/{name}/tables", "Add a table to the link", RoleAdmin, http.StatusOK, s.addTable),
		jsonRoute("DELETE", "/api/v1/links/{name}/tables/{table}", "Remove a table from the link (its data leaves the lake)", RoleAdmin, http.StatusOK, s.removeTable),
		jsonRoute("POST", "/api/v1/links/{name}/tables/{table}/reinit", "Copy a table afresh; readers see the old rows until the copy replaces them", RoleAdmin, http.StatusAccepted, s.reinitTable),
		jsonRoute("POST", "/api/v1/links/{name}/pause", "Pause the link (kept across restarts)", RoleAdmin, http.StatusOK, s.pauseLink),
		jsonRoute("POST", "/api/v1/links/{name}/resume", "Resume a paused link", RoleAdmin, http.StatusOK, s.resumeLink),
		jsonRoute("GET", "/api/v1/links/{name}/source/tables", "The tables the link's source offers, with change tracking", RoleReader, http.StatusOK, s.linkSourceTables),
		jsonRoute("POST", "/api/v1/sources/tables", "Connection test: connect to a source section and list its tables", RoleAdmin, http.StatusOK, s.sourceTables),
		jsonRoute("POST", "/api/v1/links/{name}/sql", "Run one read-only SELECT on the link's lake database", RoleReader, http.StatusOK, s.runSQL),
		jsonRoute("GET", "/api/v1/links/{name}/history", "The link's lag and changes per second over the last hour", RoleReader, http.StatusOK, s.linkHistory),
		jsonRoute("GET", "/api/v1/whoami", "Who the request's token is", RoleReader, http.StatusOK, s.whoami),
		jsonRoute("GET", "/healthz", "Alive", RoleNone, http.StatusOK, func(*http.Request, none) (Health, error) { return Health{Status: "ok"}, nil }),
		{method: "GET", path: "/readyz", summary: "Ready: every link's engine started (503 names those that did not)", role: RoleNone, status: http.StatusOK, out: reflect.TypeFor[Health](), handler: s.readyz},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics: links, tables, commits, the source, the process", role: RoleReader, status: http.StatusOK, contentType: "text/plain", handler: s.metrics.Handler().ServeHTTP},
		{method: "GET", path: "/api/v1/openapi.json", summary: "This document", role: RoleNone, status: http.StatusOK, contentType: "application/json", handler: s.openAPI},
	}
}

func (s *Service) summary(r *runner) LinkSummary {
	r.mu.Lock()
	sum := LinkSummary{Name: r.name, State: r.state, Since: r.since, Error: r.err}
	p, l := r.profile, r.l
	r.mu.Unlock()
	if p != nil {
		sum.SourceType, sum.Lake, sum.Tables = p.Source.Type, p.LakeLocation(), len(p.Tables)
	}
	if l != nil {
		sum.TableStates = map[engine.State]int{}
		for _, t := range l.Engine.Status() {
			sum.TableStates[t.State]++
		}
	}
	return sum
}

func (s *Service) detail(r *runner) (LinkDetail, error) {
	d := LinkDetail{LinkSummary: s.summary(r)}
	text, err := readFile(r.file)
	if err != nil {
		return d, err
	}
	m, err := profileMap(text)
	if err != nil {
		// An Invalid profile may not even be YAML: its error says so.
		return d, nil
	}
	d.Profile, d.Secrets = redact(m)
	return d, nil
}

func (s *Service) listLinks(*http.Request, none) (LinkList, error) {
	out := LinkList{Links: []LinkSummary{}}
	for _, r := range s.sortedRunners() {
		out.Links = append(out.Links, s.summary(r))
	}
	return out, nil
}

func (s *Service) createLink(req *http.Request, b ProfileBody) (LinkDetail, error) {
	name, err := bodyName(b.raw)
	if err != nil {
		return LinkDetail{}, err
	}
	p, text, err := parseProfile(s.profileFile(name), b.raw)
	if err != nil {
		return LinkDetail{}, err
	}
	r, err := s.create(p, text)
	if err != nil {
		return LinkDetail{}, err
	}
	return s.detail(r)
}

// bodyName reads a profile body's name, which names its file; a missing or
// invalid name is left to the profile's validation (with a placeholder
// file name).
func bodyName(raw []byte) (string, error) {
	var v struct {
		Name any `json:"name"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", problem(errBadRequest, "the body is not a JSON object: %v", err)
	}
	name, _ := v.Name.(string)
	if !validName(name) {
		return "new-link", nil
	}
	return name, nil
}

// validName reports whether name is safe as a file name: the profile's
// validation says more.
func validName(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Service) getLink(req *http.Request, _ none) (LinkDetail, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return LinkDetail{}, err
	}
	return s.detail(r)
}

func (s *Service) putLink(req *http.Request, b ProfileBody) (LinkDetail, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return LinkDetail{}, err
	}
	raw, err := keepSecrets(r, b.raw)
	if err != nil {
		return LinkDetail{}, err
	}
	p, text, err := parseProfile(r.file, raw)
	if err != nil {
		return LinkDetail{}, err
	}
	if p.Name != r.name {
		return LinkDetail{}, problem(errNameMismatch, "the profile names link %q, the path link %q: a link cannot be renamed; create the new one and delete the old", p.Name, r.name)
	}
	if err := s.update(r, p, text); err != nil {
		return LinkDetail{}, err
	}
	return s.detail(r)
}

func (s *Service) deleteLink(req *http.Request, _ none) (Unlinked, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return Unlinked{}, err
	}
	del := false
	if v := req.URL.Query().Get("delete_data"); v != "" {
		if del, err = strconv.ParseBool(v); err != nil {
			return Unlinked{}, problem(errBadRequest, "delete_data=%q: use true or false", v)
		}
	}
	if err := s.remove(req.Context(), r, del); err != nil {
		return Unlinked{}, err
	}
	return Unlinked{Link: r.name, DataDeleted: del}, nil
}

func (s *Service) linkTables(req *http.Request, _ none) (TablesReport, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return TablesReport{}, err
	}
	r.mu.Lock()
	p := r.profile
	r.mu.Unlock()
	out := TablesReport{Link: r.name, Tables: []TableInfo{}}
	if p == nil {
		return out, nil
	}
	st, err := link.OpenStore(req.Context(), p)
	if err != nil {
		return out, err
	}
	rep, err := engine.ReadReport(req.Context(), st, time.Now(), sqldb.CountRows)
	if err != nil {
		// A lake the link has not written yet: every profile table is
		// NotStarted.
		for _, t := range p.Tables {
			out.Tables = append(out.Tables, TableInfo{TableStatus: engine.TableStatus{Name: t.Name, State: engine.NotStarted}, Format: lakeFormat})
		}
		out.Warnings = []string{fmt.Sprintf("the lake has no committed state yet: %v", err)}
		return out, nil
	}
	out.Running, out.Maintenance, out.Warnings = rep.Running, rep.Maintenance, rep.Warnings
	seen := map[string]bool{}
	for _, t := range rep.Tables {
		seen[strings.ToLower(t.Name)] = true
		out.Tables = append(out.Tables, TableInfo{TableStatus: t, Format: lakeFormat})
	}
	for _, t := range p.Tables {
		if !seen[strings.ToLower(t.Name)] {
			out.Tables = append(out.Tables, TableInfo{TableStatus: engine.TableStatus{Name: t.Name, State: engine.NotStarted}, Format: lakeFormat})
		}
	}
	return out, nil
}

// lakeFormat is the table format every lake has today (the Synapse CSV
// layout); per-table formats come with #12.
const lakeFormat = "synapse-csv"

// editTables rewrites the link's profile with edit applied to its tables
// list (as JSON values), then updates the link as PUT does.
func (s *Service) editTables(r *runner, edit func([]any) ([]any, error)) (LinkDetail, error) {
	text, err := readFile(r.file)
	if err != nil {
		return LinkDetail{}, err
	}
	m, err := profileMap(text)
	if err != nil {
		return LinkDetail{}, problem(errInvalidState, "link %s's profile is not YAML (%v): replace it with PUT", r.name, err)
	}
	tables, _ := m["tables"].([]any)
	if tables, err = edit(tables); err != nil {
		return LinkDetail{}, err
	}
	m["tables"] = tables
	raw, err := json.Marshal(m)
	if err != nil {
		return LinkDetail{}, err
	}
	p, text, err := parseProfile(r.file, raw)
	if err != nil {
		return LinkDetail{}, err
	}
	if err := s.update(r, p, text); err != nil {
		return LinkDetail{}, err
	}
	return s.detail(r)
}

func (s *Service) addTable(req *http.Request, b TableBody) (LinkDetail, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return LinkDetail{}, err
	}
	var t map[string]any
	if err := json.Unmarshal(b.raw, &t); err != nil {
		return LinkDetail{}, problem(errBadRequest, "the body is not a JSON object: %v", err)
	}
	return s.editTables(r, func(ts []any) ([]any, error) { return append(ts, t), nil })
}

func (s *Service) removeTable(req *http.Request, _ none) (LinkDetail, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return LinkDetail{}, err
	}
	name := req.PathValue("table")
	return s.editTables(r, func(ts []any) ([]any, error) {
		out := ts[:0:0]
		for _, t := range ts {
			if m, ok := t.(map[string]any); ok && strings.EqualFold(fmt.Sprint(m["name"]), name) {
				continue
			}
			out = append(out, t)
		}
		if len(out) == len(ts) {
			return nil, problem(errUnknownTable, "link %s has no table %q", r.name, name)
		}
		return out, nil
	})
}

func (s *Service) reinitTable(req *http.Request, _ none) (ActionResult, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return ActionResult{}, err
	}
	if err := s.reinit(r, req.PathValue("table")); err != nil {
		return ActionResult{}, err
	}
	return ActionResult{Link: r.name, Action: "reinit", Table: req.PathValue("table"), State: r.stateNow()}, nil
}

func (s *Service) pauseLink(req *http.Request, _ none) (ActionResult, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return ActionResult{}, err
	}
	if err := s.pause(r); err != nil {
		return ActionResult{}, err
	}
	return ActionResult{Link: r.name, Action: "pause", State: r.stateNow()}, nil
}

func (s *Service) resumeLink(req *http.Request, _ none) (ActionResult, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return ActionResult{}, err
	}
	if err := s.resume(r); err != nil {
		return ActionResult{}, err
	}
	return ActionResult{Link: r.name, Action: "resume", State: r.stateNow()}, nil
}

func (s *Service) linkSourceTables(req *http.Request, _ none) (SourceTables, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return SourceTables{}, err
	}
	r.mu.Lock()
	p := r.profile
	r.mu.Unlock()
	if p == nil {
		return SourceTables{}, problem(errInvalidState, "link %s does not load (%s): fix its profile first", r.name, r.errNow())
	}
	return listSource(req.Context(), p)
}

func (s *Service) sourceTables(req *http.Request, b SourceBody) (SourceTables, error) {
	var src map[string]any
	if err := json.Unmarshal(b.raw, &src); err != nil {
		return SourceTables{}, problem(errBadRequest, "the body is not a JSON object: %v", err)
	}
	// A profile around the source section, so that the source is checked
	// by the profile's own validation (messages name source.* fields).
	raw, err := json.Marshal(map[string]any{"name": "connection-test", "source": src, "lake": map[string]any{"path": "unused"}, "tables": []any{map[string]any{"name": "unused"}}})
	if err != nil {
		return SourceTables{}, err
	}
	p, _, err := parseProfile(s.profileFile("connection-test"), raw)
	if err != nil {
		return SourceTables{}, err
	}
	p.Tables = nil
	return listSource(req.Context(), p)
}

// listSource connects to p's source and lists its tables, marking those p
// links.
func listSource(ctx context.Context, p *config.Link) (SourceTables, error) {
	ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	src, err := link.OpenSource(ctx, p, nil, discard)
	if err != nil {
		return SourceTables{}, problem(errUnreachable, "connect to the %s source: %v", p.Source.Type, err)
	}
	defer src.Close()
	infos, err := src.Tables(ctx)
	if err != nil {
		return SourceTables{}, problem(errUnreachable, "list the %s source's tables: %v", p.Source.Type, err)
	}
	linked := map[string]bool{}
	for _, t := range p.Tables {
		linked[strings.ToLower(t.Name)] = true
	}
	out := SourceTables{Tables: make([]SourceTable, 0, len(infos))}
	for _, t := range infos {
		out.Tables = append(out.Tables, SourceTable{Name: t.Name, Tracked: t.Tracked, Linked: linked[strings.ToLower(t.Name)]})
	}
	return out, nil
}

func (s *Service) runSQL(req *http.Request, q SQLRequest) (SQLResult, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return SQLResult{}, err
	}
	if strings.TrimSpace(q.SQL) == "" {
		return SQLResult{}, problem(errBadRequest, "sql is empty: send one SELECT statement")
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = defaultRowLimit
	case limit < 0 || limit > maxRowLimit:
		return SQLResult{}, problem(errBadRequest, "limit %d is out of range: 1 to %d rows", limit, maxRowLimit)
	}
	timeout := time.Duration(q.TimeoutMS) * time.Millisecond
	switch {
	case q.TimeoutMS == 0:
		timeout = defaultTimeout
	case q.TimeoutMS < 0 || timeout > maxTimeout:
		return SQLResult{}, problem(errBadRequest, "timeout_ms %d is out of range: 1 to %d", q.TimeoutMS, maxTimeout.Milliseconds())
	}
	if r.stateNow() == Invalid {
		return SQLResult{}, problem(errInvalidState, "link %s does not load (%s): fix its profile first", r.name, r.errNow())
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	db, err := r.database(ctx)
	if err != nil {
		return SQLResult{}, problem(errInvalidState, "%v", err)
	}
	start := time.Now()
	res, err := db.Collect(ctx, q.SQL, limit)
	elapsed := time.Since(start)
	var na *sqldb.NotAllowedError
	switch {
	case errors.As(err, &na):
		return SQLResult{}, problem(errSQLNotAllowed, "%v", err)
	case err != nil && ctx.Err() == context.DeadlineExceeded:
		return SQLResult{}, problem(errSQLTimeout, "the query ran longer than %s: narrow it, or raise timeout_ms", timeout)
	case err != nil:
		return SQLResult{}, problem(errSQLFailed, "%v", err)
	}
	return SQLResult{Result: *res, ElapsedMS: float64(elapsed.Microseconds()) / 1000}, nil
}

func (s *Service) readyz(w http.ResponseWriter, req *http.Request) {
	h := Health{Status: "ready"}
	for _, r := range s.sortedRunners() {
		if ok, why := r.ready(); !ok {
			if h.NotReady == nil {
				h.NotReady = map[string]string{}
			}
			h.NotReady[r.name] = why
		}
	}
	status := http.StatusOK
	if h.NotReady != nil {
		h.Status, status = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func (s *Service) whoami(req *http.Request, _ none) (WhoAmI, error) {
	id := identityOf(req)
	return WhoAmI{Name: id.Name, Role: id.Role, Auth: s.tokens != nil}, nil
}

// profileMap parses a profile's YAML into JSON values.
func profileMap(text []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// redact takes the secrets out of a profile: today the password of a
// PostgreSQL connection string (the other secrets are only named in a
// profile: a variable, a file).
func redact(m map[string]any) (ProfileView, map[string]string) {
	var secrets map[string]string
	if src, ok := m["source"].(map[string]any); ok {
		if dsn, ok := src["dsn"].(string); ok {
			if clean, had := stripPassword(dsn); had {
				src["dsn"] = clean
				secrets = map[string]string{"source.dsn.password": "set"}
			}
		}
	}
	return ProfileView(m), secrets
}

// stripPassword removes the password from a connection string, URL
// (postgres://u:p@h/db, ?password=) or keyword form (password=...).
func stripPassword(dsn string) (string, bool) {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		had := false
		if _, ok := u.User.Password(); ok {
			u.User = url.User(u.User.Username())
			had = true
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
			had = true
		}
		return u.String(), had
	}
	var kept []string
	had := false
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(strings.ToLower(f), "password=") {
			had = true
			continue
		}
		kept = append(kept, f)
	}
	return strings.Join(kept, " "), had
}

// keepSecrets puts the link's current DSN back into a PUT body whose DSN
// is the redacted one GET returned, so that a client can send back what
// it read without knowing the password.
func keepSecrets(r *runner, raw []byte) ([]byte, error) {
	r.mu.Lock()
	p := r.profile
	r.mu.Unlock()
	if p == nil || p.Source.DSN == "" {
		return raw, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, problem(errBadRequest, "the body is not a JSON object: %v", err)
	}
	src, _ := m["source"].(map[string]any)
	dsn, _ := src["dsn"].(string)
	if clean, had := stripPassword(p.Source.DSN); !had || dsn != clean {
		return raw, nil
	}
	src["dsn"] = p.Source.DSN
	return json.Marshal(m)
}
