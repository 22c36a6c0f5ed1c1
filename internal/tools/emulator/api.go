package emulator

import (
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
	// continueOnError (odata.continue-on-error) makes a $batch run every
	// request even after one failed.
	continueOnError bool
}

func parsePrefer(h http.Header) prefs {
	var p prefs
	for _, line := range h.Values("Prefer") {
		for _, part := range splitUnquoted(line, ',') {
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
			case "odata.continue-on-error":
				p.continueOnError = true
			}
		}
	}
	return p
}

// splitUnquoted splits s at sep outside double quotes, so a preference
// value such as odata.include-annotations="a,b" stays whole.
func splitUnquoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func (p prefs) pageSize() int {
	if p.maxPageSize <= 0 || p.maxPageSize > maxPageSize {
		return maxPageSize
	}
	return p.maxPageSize
}

// annotate says which instance annotations rows carry.
type annotate struct{ lookupName, navigation, formatted, totalCount bool }

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
		totalCount: want("Microsoft.Dynamics.CRM.totalrecordcount"),
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
	case "$metadata":
		if r.Method != http.MethodGet || hasKey || rest != "" {
			return errMethod(r.Method)
		}
		e.csdl(w)
		return nil
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
	case "$batch":
		if r.Method != http.MethodPost {
			return errMethod(r.Method)
		}
		return e.batch(w, r)
	}
	t, ok := e.bySet[name]
	if !ok {
		return errSegment(strings.TrimSuffix(name+"/"+rest, "/"))
	}
	if !hasKey && rest == "$count" {
		if r.Method != http.MethodGet {
			return errMethod(r.Method)
		}
		return e.getCount(w, r, t)
	}
	if !hasKey && rest != "" {
		return errSegment(rest)
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
	if rest != "" {
		return e.propertyRequest(w, r, t, id, rest)
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
	filter    filterNode // nil: every row
	count     bool       // $count=true: answer @odata.count
	top       int        // 0: none
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
		case "$select", "$filter", "$top", "$orderby", "$skiptoken", "$deltatoken", "$count":
		case "$expand", "$apply", "$search", "$skip", "fetchXml", "savedQuery", "userQuery":
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
		n, err := parseFilter(t, f)
		if err != nil {
			return nil, err
		}
		q.filter = n
	}
	switch c := v.Get("$count"); c {
	case "", "false":
	case "true":
		q.count = true
	default:
		return nil, errQuery("'%s' is not a valid count option.", c)
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
