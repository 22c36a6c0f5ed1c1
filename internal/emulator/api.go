package emulator

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

const apiPrefix = "/api/data/v9.2/"

// maxPageSize is the largest page Dataverse serves, and the default.
const maxPageSize = 5000

// prefs are the Prefer header preferences the emulator honours.
type prefs struct {
	trackChanges   bool
	maxPageSize    int // 0: not asked
	representation bool
	annotations    string // the odata.include-annotations value, quoted as sent
}

func parsePrefer(h http.Header) prefs {
	var p prefs
	for _, line := range h.Values("Prefer") {
		for _, part := range strings.Split(line, ",") {
			part = strings.TrimSpace(part)
			name, value, _ := strings.Cut(part, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "odata.track-changes":
				p.trackChanges = true
			case "odata.maxpagesize":
				if n, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && n > 0 {
					p.maxPageSize = n
				}
			case "return":
				p.representation = strings.TrimSpace(value) == "representation"
			case "odata.include-annotations":
				p.annotations = strings.TrimSpace(value)
			}
		}
	}
	return p
}

func (p prefs) pageSize() int {
	if p.maxPageSize <= 0 || p.maxPageSize > maxPageSize {
		return maxPageSize
	}
	return p.maxPageSize
}

// annotate says which instance annotations rows carry.
type annotate struct{ lookupName, navigation, formatted bool }

func (p prefs) annotate() annotate {
	a := strings.Trim(p.annotations, `"`)
	want := func(name string) bool {
		for _, pat := range strings.Split(a, ",") {
			pat = strings.TrimSpace(pat)
			if pat == "*" || pat == name {
				return true
			}
			if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(name, prefix) {
				return true
			}
		}
		return false
	}
	return annotate{
		lookupName: want("Microsoft.Dynamics.CRM.lookuplogicalname"),
		navigation: want("Microsoft.Dynamics.CRM.associatednavigationproperty"),
		formatted:  want("OData.Community.Display.V1.FormattedValue"),
	}
}

// applied is the Preference-Applied header for p on a read.
func (p prefs) applied(track bool) string {
	var out []string
	if track {
		out = append(out, "odata.track-changes")
	}
	if p.maxPageSize > 0 {
		out = append(out, "odata.maxpagesize="+strconv.Itoa(p.pageSize()))
	}
	if p.annotations != "" {
		out = append(out, "odata.include-annotations="+p.annotations)
	}
	return strings.Join(out, ",")
}

// recorder remembers the status of an answer, for the request log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	e.stats.requests.Add(1)
	defer drain(r)
	if e.log.Enabled(r.Context(), slog.LevelDebug) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			e.log.Debug("emulator: request", "method", r.Method, "url", r.URL.RequestURI(), "status", rec.status, "took", time.Since(start))
		}()
		w = rec
	}
	if !e.authorized(w, r) {
		return
	}
	if e.inject(w, r) {
		return
	}
	w.Header().Set("OData-Version", "4.0")
	if err := e.route(w, r); err != nil {
		writeError(w, err)
	}
}

func (e *Emulator) route(w http.ResponseWriter, r *http.Request) error {
	path := strings.TrimPrefix(r.URL.Path, apiPrefix)
	first, rest, _ := strings.Cut(path, "/")
	name, key, hasKey := splitKey(first)
	switch name {
	case "":
		if r.Method != http.MethodGet {
			return errMethod(r.Method)
		}
		return e.serviceDocument(w, r)
	case "WhoAmI":
		if r.Method != http.MethodGet {
			return errMethod(r.Method)
		}
		return e.whoAmI(w, r)
	case "EntityDefinitions":
		if r.Method != http.MethodGet {
			return errMethod(r.Method)
		}
		return e.entityDefinitions(w, r, key, hasKey, rest)
	case "GlobalOptionSetDefinitions":
		if r.Method != http.MethodGet {
			return errMethod(r.Method)
		}
		return e.globalOptionSets(w, r, key, hasKey, rest)
	}
	t, ok := e.bySet[name]
	if !ok || rest != "" {
		return errSegment(strings.TrimSuffix(name+"/"+rest, "/"))
	}
	if !hasKey {
		switch r.Method {
		case http.MethodGet:
			return e.getCollection(w, r, t)
		case http.MethodPost:
			return e.create(w, r, t)
		}
		return errMethod(r.Method)
	}
	id, err := uuid.Parse(key)
	if err != nil {
		return errQuery("Bad Request - Error in query syntax: the key '%s' of %s is not a GUID.", key, t.SetName)
	}
	switch r.Method {
	case http.MethodGet:
		return e.getOne(w, r, t, id)
	case http.MethodPatch:
		return e.patch(w, r, t, id)
	case http.MethodDelete:
		return e.remove(w, r, t, id)
	}
	return errMethod(r.Method)
}

func errMethod(m string) *apiError {
	return &apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, "The requested resource does not support http method '" + m + "'."}
}

// splitKey splits "accounts(<guid>)" into "accounts" and "<guid>".
func splitKey(seg string) (name, key string, ok bool) {
	i := strings.IndexByte(seg, '(')
	if i < 0 || !strings.HasSuffix(seg, ")") {
		return seg, "", false
	}
	return seg[:i], seg[i+1 : len(seg)-1], true
}

func (e *Emulator) base(r *http.Request) string { return baseOrigin(r) + "/api/data/v9.2" }

func (e *Emulator) whoAmI(w http.ResponseWriter, r *http.Request) error {
	body, _ := json.Marshal(map[string]string{
		"@odata.context": e.base(r) + "/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
		"BusinessUnitId": e.buID.String(),
		"UserId":         e.callerID.String(),
		"OrganizationId": e.orgID.String(),
	})
	writeBody(w, http.StatusOK, body)
	return nil
}

// serviceDocument lists the entity sets, as the Web API root does.
func (e *Emulator) serviceDocument(w http.ResponseWriter, r *http.Request) error {
	sets := make([]map[string]string, len(e.tables))
	for i, t := range e.tables {
		sets[i] = map[string]string{"name": t.SetName, "kind": "EntitySet", "url": t.SetName}
	}
	body, err := json.Marshal(map[string]any{"@odata.context": e.base(r) + "/$metadata", "value": sets})
	if err != nil {
		return err
	}
	writeBody(w, http.StatusOK, body)
	return nil
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; odata.metadata=minimal")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// query is the parsed system query options of a read.
type query struct {
	selectRaw string
	sel       []*attribute // nil: all properties
	filterRaw string
	filter    []cond
	top       int // 0: none
	orderby   string
	// order is the $orderby terms; nil when rows come in key order.
	order []orderTerm
}

// parseQuery reads the query options of a collection read. Options the
// emulator does not implement are refused rather than ignored, so a client
// never silently gets a different answer than the service would give.
func parseQuery(t *table, v url.Values) (*query, error) {
	q := &query{}
	for name := range v {
		switch name {
		case "$select", "$filter", "$top", "$orderby", "$skiptoken", "$deltatoken":
		case "$expand", "$count", "$apply", "$search", "$skip", "fetchXml", "savedQuery", "userQuery":
			return nil, errQuery("The query option '%s' is not supported by the lakelink emulator.", name)
		default:
			if strings.HasPrefix(name, "$") {
				return nil, errQuery("The query parameter '%s' is not supported.", name)
			}
		}
	}
	if s := v.Get("$select"); s != "" {
		q.selectRaw = s
		sel, err := parseSelect(t, s)
		if err != nil {
			return nil, err
		}
		q.sel = sel
	}
	if f := v.Get("$filter"); f != "" {
		q.filterRaw = f
		conds, err := parseFilter(t, f)
		if err != nil {
			return nil, err
		}
		q.filter = conds
	}
	if s := v.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, errQuery("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", s)
		}
		q.top = n
	}
	if o := v.Get("$orderby"); o != "" {
		order, err := parseOrderBy(t, o)
		if err != nil {
			return nil, err
		}
		q.orderby, q.order = o, order
	}
	return q, nil
}

func parseSelect(t *table, s string) ([]*attribute, error) {
	var sel []*attribute
	seen := map[*attribute]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		a, ok := t.byProp[name]
		if !ok {
			return nil, errNoProperty(name, t.entityType())
		}
		if !seen[a] {
			seen[a] = true
			sel = append(sel, a)
		}
	}
	return sel, nil
}

// cond is one "property eq literal" term of a $filter.
type cond struct {
	attr *attribute
	want []byte // stored field (JSON id only, for lookups); nil: eq null
}

func (c cond) match(fields [][]byte, version uint64) bool {
	if c.attr.col < 0 { // versionnumber
		return string(c.want) == strconv.FormatUint(version, 10)
	}
	f := fields[c.attr.col]
	if c.attr.Kind.isLookup() && f != nil {
		_, f = splitLookup(f)
	}
	if c.want == nil {
		return f == nil
	}
	return bytes.Equal(f, c.want)
}

// parseFilter accepts the subset "p eq literal [and p eq literal]...".
func parseFilter(t *table, f string) ([]cond, error) {
	var conds []cond
	for _, term := range strings.Split(f, " and ") {
		prop, lit, ok := strings.Cut(strings.TrimSpace(term), " eq ")
		if !ok {
			return nil, errQuery("The lakelink emulator supports only $filter terms of the form 'property eq literal' joined by 'and'; got '%s'.", term)
		}
		prop, lit = strings.TrimSpace(prop), strings.TrimSpace(lit)
		a, ok := t.byProp[prop]
		if !ok {
			return nil, errNoProperty(prop, t.entityType())
		}
		c := cond{attr: a}
		if lit != "null" {
			want, err := literalField(t, a, lit)
			if err != nil {
				return nil, err
			}
			c.want = want
		}
		conds = append(conds, c)
	}
	return conds, nil
}

func literalField(t *table, a *attribute, lit string) ([]byte, error) {
	if a.Kind.isLookup() || a.Kind == kUniqueID {
		id, err := uuid.Parse(strings.Trim(lit, "'"))
		if err != nil {
			return nil, errQuery("A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and '%s' for operator kind 'Equal'.", lit)
		}
		return guidField(id), nil
	}
	if a.Name == "versionnumber" {
		if _, err := strconv.ParseUint(lit, 10, 64); err != nil {
			return nil, errQuery("A binary operator with incompatible types was detected for 'versionnumber': '%s'.", lit)
		}
		return []byte(lit), nil
	}
	raw := lit
	if strings.HasPrefix(lit, "'") && strings.HasSuffix(lit, "'") && len(lit) >= 2 {
		raw = string(appendJSONString(nil, strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")))
	} else if a.Kind == kDateTime || a.Kind == kDateOnly {
		raw = string(appendJSONString(nil, lit))
	}
	f, err := fieldFromJSON(t, a, json.RawMessage(raw))
	if err != nil {
		return nil, errQuery("Invalid literal '%s' for property '%s' in $filter.", lit, a.property)
	}
	return f, nil
}

// linkQuery builds the query string of a next or delta link, with the
// readable escaping Dataverse uses (commas kept, spaces as %20).
func linkQuery(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pairs[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(url.QueryEscape(pairs[i+1]), "%2C", ","), "+", "%20"))
	}
	return b.String()
}

func selectContext(t *table, q *query) string {
	if q.selectRaw == "" {
		return t.SetName
	}
	names := make([]string, len(q.sel))
	for i, a := range q.sel {
		names[i] = a.property
	}
	return t.SetName + "(" + strings.Join(names, ",") + ")"
}
