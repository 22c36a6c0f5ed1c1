package dataverse

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fake is a small Dataverse Web API for unit tests: metadata from the
// recorded shapes under testdata/fake, and one table, account, whose rows
// the test changes. Its change tracking follows the emulator's invariant: a
// first read pins the environment version V at its first page; its delta
// link returns rows and tombstones with a version above V, one entry per
// id, ordered by version, under an upper bound pinned at the delta read's
// first page.
type fake struct {
	t *testing.T

	mu      sync.Mutex
	version int64
	rows    map[string]*fakeRow
	// token, when set, is the bearer token every request must carry.
	token string
	// throttle and unavailable answer that many next requests with 429
	// (Retry-After: 0) and 503.
	throttle, unavailable int
	// cut answers that many next data reads with half a body.
	cut int
	// expireBelow rejects delta and paging tokens older than this version.
	expireBelow int64
	// forbid answers data reads with 403.
	forbid bool
	// extraAttrs are appended to account's attributes (a column added at
	// the source).
	extraAttrs []map[string]any
	requests   int
	// casts are the attribute casts of the metadata reads, in order.
	casts   []string
	prefers []string
	selects []string
}

type fakeRow struct {
	id      string
	version int64
	deleted bool
	vals    map[string]any
}

func newFake(t *testing.T) (*fake, *httptest.Server) {
	f := &fake{t: t, rows: map[string]*fakeRow{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func fakeID(i int) string { return fmt.Sprintf("0000%04d-0000-4000-8000-00000000abcd", i) }

// upsert writes account i with the given name; its other values are
// derived from i.
func (f *fake) upsert(i int, name string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	id := fakeID(i)
	f.rows[id] = &fakeRow{id: id, version: f.version, vals: map[string]any{
		"accountid":               strings.ToUpper(id),
		"name":                    name,
		"revenue":                 json.Number(fmt.Sprintf("%d.50", i*1000)),
		"numberofemployees":       i,
		"address1_latitude":       json.Number("47.6062"),
		"donotemail":              i%2 == 0,
		"description":             "line one\nline \"two\", with comma",
		"industrycode":            1,
		"_primarycontactid_value": nil,
		"_ownerid_value":          "1e5b6f7a-0000-4000-8000-000000000001",
		"_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
		"exchangerate":   json.Number("1.0000000000"),
		"statecode":      0,
		"statuscode":     1,
		"versionnumber":  f.version,
		"createdon":      fmt.Sprintf("20%02d-03-01T10:00:00Z", 20+i%5),
		"modifiedon":     "2025-01-02T03:04:05Z",
		"lastonholdtime": nil,
	}}
	return f.version
}

// setVal changes one value of account i, as an update does.
func (f *fake) setVal(i int, k string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	r := f.rows[fakeID(i)]
	r.version = f.version
	r.vals[k] = v
	r.vals["versionnumber"] = f.version
}

func (f *fake) remove(i int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	id := fakeID(i)
	f.rows[id] = &fakeRow{id: id, version: f.version, deleted: true}
	return f.version
}

func (f *fake) set(fn func(*fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func odataError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		odataError(w, http.StatusUnauthorized, "0x80040220", "Principal user is missing prvReadEntity privilege or the token is invalid")
		return
	}
	if f.throttle > 0 {
		f.throttle--
		w.Header().Set("Retry-After", "0")
		odataError(w, http.StatusTooManyRequests, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		return
	}
	if f.unavailable > 0 {
		f.unavailable--
		odataError(w, http.StatusServiceUnavailable, "0x80040216", "An unexpected error occurred.")
		return
	}
	p, ok := strings.CutPrefix(r.URL.Path, apiPath)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case p == "EntityDefinitions":
		f.file(w, "entitydefinitions.json")
	case strings.HasPrefix(p, "EntityDefinitions(LogicalName='"):
		f.metadata(w, strings.TrimPrefix(p, "EntityDefinitions(LogicalName='"), r.URL.Query().Get("$expand") == "Attributes")
	case p == "accounts":
		f.prefers = append(f.prefers, r.Header.Get("Prefer"))
		f.selects = append(f.selects, r.URL.Query().Get("$select"))
		if f.forbid {
			odataError(w, http.StatusForbidden, "0x80040220", "Principal user is missing prvReadAccount privilege")
			return
		}
		f.read(w, r.URL.Query())
	default:
		odataError(w, http.StatusNotFound, "0x80060888", "Resource not found for the segment '"+p+"'.")
	}
}

func (f *fake) file(w http.ResponseWriter, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", "fake", name))
	if err != nil {
		f.t.Errorf("fake: %v", err)
		odataError(w, http.StatusInternalServerError, "0x80040216", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	_, _ = w.Write(b)
}

// metadata serves EntityDefinitions(LogicalName='x') (with its Attributes
// expanded when asked) and the choice metadata casts.
func (f *fake) metadata(w http.ResponseWriter, rest string, expand bool) {
	name, sub, _ := strings.Cut(rest, "')")
	switch sub {
	case "":
		b, _ := os.ReadFile(filepath.Join("testdata", "fake", "entitydefinitions.json"))
		var all struct {
			Value []map[string]any `json:"value"`
		}
		if err := json.Unmarshal(b, &all); err != nil {
			f.t.Errorf("fake: %v", err)
		}
		for _, d := range all.Value {
			if d["LogicalName"] == name {
				if b, err := os.ReadFile(filepath.Join("testdata", "fake", name+"-attributes.json")); err == nil && expand {
					var attrs struct {
						Value []map[string]any `json:"value"`
					}
					if err := json.Unmarshal(b, &attrs); err != nil {
						f.t.Errorf("fake: %s attributes: %v", name, err)
					}
					d["Attributes"] = append(attrs.Value, f.extraAttrs...)
				}
				d["@odata.context"] = "https://contoso.crm.dynamics.com/api/data/v9.2/$metadata#EntityDefinitions/$entity"
				_ = json.NewEncoder(w).Encode(d)
				return
			}
		}
		odataError(w, http.StatusNotFound, "0x80060888", "Could not find entity with name "+name)
	default:
		// A cast answers the attributes of its type and of the types
		// derived from it, each with its AttributeType and, in a cast to
		// a base type, its @odata.type.
		types := map[string][]string{
			"/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata": {"Picklist"},
			"/Attributes/Microsoft.Dynamics.CRM.BooleanAttributeMetadata":  {"Boolean"},
			"/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata":    {"State"},
			"/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata":   {"Status"},
			"/Attributes/Microsoft.Dynamics.CRM.EnumAttributeMetadata":     {"Picklist", "State", "Status"},
		}[sub]
		if types == nil {
			odataError(w, http.StatusNotFound, "0x80060888", "Resource not found for the segment '"+sub+"'.")
			return
		}
		f.casts = append(f.casts, strings.TrimPrefix(sub, "/Attributes/Microsoft.Dynamics.CRM."))
		out := []map[string]any{}
		for _, typ := range types {
			b, err := os.ReadFile(filepath.Join("testdata", "fake", name+"-"+strings.ToLower(typ)+".json"))
			if err != nil {
				continue
			}
			var body struct {
				Value []map[string]any `json:"value"`
			}
			if err := json.Unmarshal(b, &body); err != nil {
				f.t.Errorf("fake: %s %s: %v", name, typ, err)
			}
			for _, a := range body.Value {
				a["AttributeType"] = typ
				if len(types) > 1 {
					a["@odata.type"] = "#Microsoft.Dynamics.CRM." + typ + "AttributeMetadata"
				}
				out = append(out, a)
			}
		}
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		_ = json.NewEncoder(w).Encode(map[string]any{"value": out})
	}
}

// read serves a first read or a delta read of accounts, one page.
// Tokens: $skiptoken=first:<V>:<offset> pages a first read pinned at V;
// $deltatoken=<V> starts a delta read; $skiptoken=delta:<V>:<W>:<offset>
// pages a delta read of versions in (V, W].
func (f *fake) read(w http.ResponseWriter, q url.Values) {
	size := 3
	for _, p := range f.prefers[len(f.prefers)-1:] {
		for _, part := range strings.Split(p, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "odata.maxpagesize="); ok {
				size, _ = strconv.Atoi(v)
			}
		}
	}
	sel := q.Get("$select")
	var rows []*fakeRow
	var from, upto int64
	mode, offset := "first", 0
	switch {
	case q.Get("$skiptoken") != "":
		parts := strings.Split(q.Get("$skiptoken"), ":")
		mode = parts[0]
		from, _ = strconv.ParseInt(parts[1], 10, 64)
		if mode == "delta" {
			upto, _ = strconv.ParseInt(parts[2], 10, 64)
		}
		offset, _ = strconv.Atoi(parts[len(parts)-1])
	case q.Get("$deltatoken") != "":
		mode = "delta"
		from, _ = strconv.ParseInt(q.Get("$deltatoken"), 10, 64)
		upto = f.version
	default:
		from = f.version
	}
	if from < f.expireBelow {
		odataError(w, http.StatusBadRequest, "0x80044352", "Version stamp associated with the client has expired. Please perform a full sync.")
		return
	}
	for _, r := range f.rows {
		if mode == "first" && !r.deleted || mode == "delta" && r.version > from && r.version <= upto {
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if mode == "first" {
			return rows[i].id < rows[j].id
		}
		return rows[i].version < rows[j].version
	})
	end := min(offset+size, len(rows))
	base := "http://contoso.example" + apiPath + "accounts?$select=" + url.QueryEscape(sel)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("Preference-Applied", "odata.track-changes")
	var b strings.Builder
	b.WriteString(`{"@odata.context":"http://contoso.example/api/data/v9.2/$metadata#accounts(` + sel + `)","value":[`)
	for i, r := range rows[offset:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.deleted {
			fmt.Fprintf(&b, `{"@odata.context":"http://contoso.example/api/data/v9.2/$metadata#accounts/$deletedEntity","id":%q,"reason":"deleted"}`, r.id)
			continue
		}
		e := map[string]any{"@odata.etag": fmt.Sprintf(`W/"%d"`, r.version)}
		for k, v := range r.vals {
			e[k] = v
		}
		j, _ := json.Marshal(e)
		b.Write(j)
	}
	b.WriteString("]")
	switch {
	case end < len(rows) && mode == "first":
		fmt.Fprintf(&b, `,"@odata.nextLink":%q`, base+"&$skiptoken="+url.QueryEscape(fmt.Sprintf("first:%d:%d", from, end)))
	case end < len(rows):
		fmt.Fprintf(&b, `,"@odata.nextLink":%q`, base+"&$skiptoken="+url.QueryEscape(fmt.Sprintf("delta:%d:%d:%d", from, upto, end)))
	case mode == "first":
		fmt.Fprintf(&b, `,"@odata.deltaLink":%q`, base+"&$deltatoken="+strconv.FormatInt(from, 10))
	default:
		fmt.Fprintf(&b, `,"@odata.deltaLink":%q`, base+"&$deltatoken="+strconv.FormatInt(upto, 10))
	}
	b.WriteString("}")
	if f.cut > 0 {
		f.cut--
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		_, _ = w.Write([]byte(b.String()[:b.Len()/2]))
		return
	}
	_, _ = w.Write([]byte(b.String()))
}

func readJSON(t testing.TB, path string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
