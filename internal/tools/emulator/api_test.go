package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	v := start(t, Config{Scale: 2, Seed: 9})
	tests := []struct {
		name   string
		faults Faults
		check  func(t *testing.T, a answer)
	}{
		{"throttle", Faults{ThrottleRate: 1}, func(t *testing.T, a answer) {
			if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "1" {
				t.Errorf("got %d Retry-After %q; want 429 with Retry-After 1", a.status, a.header.Get("Retry-After"))
			}
		}},
		{"throttle rounds up", Faults{ThrottleRate: 1, RetryAfter: 2100 * time.Millisecond}, func(t *testing.T, a answer) {
			if a.header.Get("Retry-After") != "3" {
				t.Errorf("Retry-After %q, want 3", a.header.Get("Retry-After"))
			}
		}},
		{"error", Faults{ErrorRate: 1}, func(t *testing.T, a answer) {
			if a.status != http.StatusServiceUnavailable && a.status != http.StatusInternalServerError {
				t.Errorf("got %d, want 503 or 500", a.status)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(a.body, &body); err != nil || body.Error.Code == "" {
				t.Errorf("body %s is not an OData error: %v", a.body, err)
			}
		}},
		{"none", Faults{}, func(t *testing.T, a answer) {
			if a.status != http.StatusOK {
				t.Errorf("got %d, want 200", a.status)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v.e.SetFaults(tc.faults)
			tc.check(t, v.do(t, "GET", "accounts?$select=name", ""))
		})
	}

	t.Run("rate", func(t *testing.T) {
		v.e.SetFaults(Faults{ThrottleRate: 0.3})
		n := 0
		for range 400 {
			if v.do(t, "GET", "WhoAmI", "").status == http.StatusTooManyRequests {
				n++
			}
		}
		if n < 80 || n > 160 {
			t.Errorf("%d of 400 requests throttled at rate 0.3", n)
		}
	})
	t.Run("latency", func(t *testing.T) {
		v.e.SetFaults(Faults{Latency: 60 * time.Millisecond})
		t0 := time.Now()
		v.do(t, "GET", "WhoAmI", "")
		if el := time.Since(t0); el < 60*time.Millisecond {
			t.Errorf("answer after %v, want at least 60ms", el)
		}
	})
	t.Run("admin", func(t *testing.T) {
		v.e.SetFaults(Faults{})
		a := v.do(t, "PUT", "/admin/faults", `{"throttle_rate":1,"retry_after":"3s","token_max_age":"1h"}`)
		if a.status != http.StatusOK {
			t.Fatalf("PUT /admin/faults: %d %s", a.status, a.body)
		}
		want := Faults{ThrottleRate: 1, RetryAfter: 3 * time.Second, TokenMaxAge: time.Hour}
		var got Faults
		if err := json.Unmarshal(v.do(t, "GET", "/admin/faults", "").body, &got); err != nil || got != want {
			t.Fatalf("GET /admin/faults: %+v (%v), want %+v", got, err, want)
		}
		if a := v.do(t, "GET", "WhoAmI", ""); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "3" {
			t.Errorf("after PUT: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
		}
		var st Stats
		if err := json.Unmarshal(v.do(t, "GET", "/admin/stats", "").body, &st); err != nil || st.Throttled == 0 || st.Requests < st.Throttled {
			t.Errorf("stats %+v (%v)", st, err)
		}
		if a := v.do(t, "PUT", "/admin/faults", `{"latency":"soon"}`); a.status != http.StatusBadRequest {
			t.Errorf("bad duration: %d, want 400", a.status)
		}
		v.e.SetFaults(Faults{})
	})
}

func TestAuth(t *testing.T) {
	v := start(t, Config{Scale: 1, Token: "s3cret"})
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"none", nil, http.StatusUnauthorized},
		{"wrong", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"basic", []string{"Authorization", "Basic s3cret"}, http.StatusUnauthorized},
		{"right", []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := v.do(t, "GET", "accounts?$select=name", "", tc.hdr...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			if tc.status == http.StatusUnauthorized && (!strings.Contains(a.header.Get("WWW-Authenticate"), "Bearer authorization_uri=") || len(a.body) != 0) {
				t.Errorf("401 with WWW-Authenticate %q and body %q; want a Bearer challenge and no body", a.header.Get("WWW-Authenticate"), a.body)
			}
		})
	}
	if a := v.do(t, "GET", "/admin/stats", ""); a.status != http.StatusOK {
		t.Errorf("admin needs no token: %d", a.status)
	}
}

func TestWrites(t *testing.T) {
	v := start(t, Config{Scale: 5, Seed: 2})
	acc := seqID(v.e.layout["account"].Base, 0).String()
	contact := seqID(v.e.layout["contact"].Base, 1).String()
	fresh := "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"create with id", "POST", "accounts", `{"accountid":"` + fresh + `","name":"mine"}`, nil, http.StatusNoContent},
		{"create duplicate", "POST", "accounts", `{"accountid":"` + fresh + `"}`, nil, http.StatusPreconditionFailed},
		{"create generated duplicate", "POST", "accounts", `{"accountid":"` + acc + `"}`, nil, http.StatusPreconditionFailed},
		{"bind", "PATCH", "contacts(" + contact + ")", `{"parentcustomerid_account@odata.bind":"/accounts(` + fresh + `)"}`, nil, http.StatusNoContent},
		{"bind missing", "PATCH", "contacts(" + contact + ")", `{"parentcustomerid_account@odata.bind":"/accounts(` + strings.Repeat("0", 8) + `-0000-0000-0000-000000000000)"}`, nil, http.StatusNotFound},
		{"bind wrong set", "PATCH", "contacts(" + contact + ")", `{"parentcustomerid_account@odata.bind":"/contacts(` + contact + `)"}`, nil, http.StatusBadRequest},
		{"bind unknown nav", "PATCH", "contacts(" + contact + ")", `{"nosuch@odata.bind":"/accounts(` + fresh + `)"}`, nil, http.StatusBadRequest},
		{"upsert creates", "PATCH", "accounts(22222222-2222-3333-4444-555555555555)", `{"name":"upserted"}`, nil, http.StatusNoContent},
		{"update only", "PATCH", "accounts(33333333-2222-3333-4444-555555555555)", `{"name":"x"}`, []string{"If-Match", "*"}, http.StatusNotFound},
		{"create only", "PATCH", "accounts(" + acc + ")", `{"name":"x"}`, []string{"If-None-Match", "*"}, http.StatusPreconditionFailed},
		{"stale etag", "PATCH", "accounts(" + acc + ")", `{"name":"x"}`, []string{"If-Match", `W/"999999"`}, http.StatusPreconditionFailed},
		{"state sets status", "PATCH", "accounts(" + acc + ")", `{"statecode":1}`, nil, http.StatusNoContent},
		{"status of another state", "PATCH", "accounts(" + acc + ")", `{"statecode":0,"statuscode":2}`, nil, http.StatusBadRequest},
		{"required null", "PATCH", "accounts(" + acc + ")", `{"statecode":null}`, nil, http.StatusBadRequest},
		{"wrong type", "PATCH", "accounts(" + acc + ")", `{"numberofemployees":"many"}`, nil, http.StatusBadRequest},
		{"out of range", "PATCH", "accounts(" + acc + ")", `{"address1_latitude":91}`, nil, http.StatusBadRequest},
		{"not json", "POST", "accounts", `[1,2]`, nil, http.StatusBadRequest},
		{"date only", "PATCH", "contacts(" + contact + ")", `{"birthdate":"1990-05-17"}`, nil, http.StatusNoContent},
		{"bad key", "GET", "accounts(42)", "", nil, http.StatusBadRequest},
		{"method", "PUT", "accounts", "", nil, http.StatusMethodNotAllowed},
		{"representation", "PATCH", "accounts(" + acc + ")?$select=name", `{"name":"shown"}`, []string{"Prefer", "return=representation"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := v.do(t, tc.method, tc.path, tc.body, tc.hdr...); a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
	var row map[string]any
	a := v.do(t, "GET", "accounts("+acc+")?$select=statecode,statuscode,modifiedon,name", "")
	if err := json.Unmarshal(a.body, &row); err != nil {
		t.Fatal(err)
	}
	if row["statecode"] != 1.0 || row["statuscode"] != 2.0 || row["modifiedon"] != fixedNow.Format(dateTimeLayout) || row["name"] != "shown" {
		t.Errorf("after updates: %v", row)
	}
	if a := v.do(t, "GET", "accounts("+acc+")", "", "If-None-Match", a.header.Get("ETag")); a.status != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", a.status)
	}
	v.do(t, "PATCH", "contacts("+contact+")", `{"firstname":"Ada","lastname":"Lovelace"}`)
	p := decodePage(t, v.do(t, "GET", "contacts?$select=fullname&$filter=_parentcustomerid_value%20eq%20"+fresh, ""))
	if len(p.Value) != 1 || p.Value[0]["contactid"] != contact || p.Value[0]["fullname"] != "Ada Lovelace" {
		t.Errorf("filter on a lookup, fullname from its parts: %v", p.Value)
	}
}

func TestQueries(t *testing.T) {
	v := start(t, Config{Scale: 20, Seed: 4})
	tests := []struct {
		name  string
		path  string
		pages int
		rows  int
	}{
		{"all", "accounts?$select=name", 7, 20},
		{"top below page", "accounts?$select=name&$top=2", 1, 2},
		{"top over pages", "accounts?$select=name&$top=7", 3, 7},
		{"top exact", "accounts?$select=name&$top=6", 2, 6},
		{"filter", "accounts?$select=name&$filter=statecode%20eq%200%20and%20donotemail%20eq%20false", 0, -1},
		{"orderby key", "accounts?$select=name&$orderby=accountid%20asc", 7, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, pages := 0, 0
			for link := tc.path; link != ""; pages++ {
				p := decodePage(t, v.do(t, "GET", link, "", "Prefer", "odata.maxpagesize=3"))
				for _, r := range p.Value {
					if strings.Contains(tc.path, "$filter") && (r["statecode"] != nil || r["name"] == nil) {
						t.Fatalf("row %v", r)
					}
				}
				rows += len(p.Value)
				link = p.NextLink
			}
			if tc.rows >= 0 && (rows != tc.rows || pages != tc.pages) {
				t.Errorf("%d rows in %d pages, want %d in %d", rows, pages, tc.rows, tc.pages)
			}
		})
	}
	for _, bad := range []string{"$expand=primarycontactid", "$orderby=name%20up", "$orderby=nosuch", "$filter=length(name)%20gt%201", "$top=-1", "$skip=3", "$filter=revenue%20eq%20'abc'"} {
		if a := v.do(t, "GET", "accounts?"+bad, ""); a.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, a.status)
		}
	}
}

func TestDeterministic(t *testing.T) {
	first := func(seed int64) []byte {
		v := start(t, Config{Scale: 50, Seed: seed})
		a := v.do(t, "GET", "contacts", "", "Prefer", "odata.maxpagesize=50")
		return bytes.ReplaceAll(a.body, []byte(v.srv.URL), nil)
	}
	a, b, c := first(7), first(7), first(8)
	if !bytes.Equal(a, b) {
		t.Error("same seed and scale gave different contacts")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same contacts")
	}
}

func TestExtraTables(t *testing.T) {
	v := start(t, Config{Scale: 1, ExtraTables: 3, ExtraRows: 11})
	var defs struct{ Value []map[string]any }
	if err := json.Unmarshal(v.do(t, "GET", "EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled%20eq%20true", "").body, &defs); err != nil {
		t.Fatal(err)
	}
	if len(defs.Value) != 6+3 {
		t.Errorf("%d tracked tables, want 9", len(defs.Value))
	}
	for i := range 3 {
		rows, _, _ := readAll(t, v, ExtraEntitySet(ExtraTableName(i))+"?$select=lakelink_name", 5000)
		if len(rows) != 11 {
			t.Errorf("%s: %d rows, want 11", ExtraTableName(i), len(rows))
		}
	}
}

// TestServeRate pages a first read of 50k contacts and reports the rate
// per second of CPU (server and client in this process), which other work
// on the machine does not skew the way it skews wall time.
func TestServeRate(t *testing.T) {
	v := start(t, Config{Scale: 1, Counts: map[string]int{"contact": 50000}})
	cpu0, t0 := cpuTime(t), time.Now()
	n := 0
	for link := "contacts"; link != ""; {
		a := v.do(t, "GET", link, "", "Prefer", "odata.track-changes, odata.maxpagesize=5000")
		var p struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(a.body, &p); err != nil {
			t.Fatal(err)
		}
		n += len(p.Value)
		link = p.NextLink
	}
	cpu, wall := cpuTime(t)-cpu0, time.Since(t0)
	if n != 50000 {
		t.Fatalf("%d rows", n)
	}
	rate := float64(n) / cpu.Seconds()
	t.Logf("served %d contacts in %v (%v of CPU, client decoding included): %.0f rows per CPU second", n, wall, cpu, rate)
	// Only a collapse fails the test (an O(n^2) page, say).
	if rate < 5000 {
		t.Errorf("served %.0f rows per CPU second; the emulator must page far faster (target > 50k rows/s)", rate)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOrderBy pages ordered reads and checks the order against an
// independent comparison of the decoded values.
func TestOrderBy(t *testing.T) {
	v := start(t, Config{Scale: 20, Seed: 6})
	tests := []struct {
		orderby string
		top     int
	}{
		{"name", 0},
		{"revenue desc", 0},
		{"createdon desc,name", 0},
		{"statecode,numberofemployees desc", 0},
		{"_primarycontactid_value", 0},
		{"versionnumber desc", 0},
		{"donotemail,address1_latitude", 0},
		{"revenue desc", 7},
		{"accountid desc", 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/top=%d", tc.orderby, tc.top), func(t *testing.T) {
			link := "accounts?$orderby=" + strings.ReplaceAll(tc.orderby, " ", "%20")
			if tc.top > 0 {
				link += fmt.Sprintf("&$top=%d", tc.top)
			}
			var rows []map[string]any
			for link != "" {
				p := decodePage(t, v.do(t, "GET", link, "", "Prefer", "odata.maxpagesize=3"))
				rows = append(rows, p.Value...)
				link = p.NextLink
			}
			want := 20
			if tc.top > 0 {
				want = tc.top
			}
			if len(rows) != want {
				t.Fatalf("%d rows, want %d", len(rows), want)
			}
			seen := map[any]bool{}
			for i, r := range rows {
				if seen[r["accountid"]] {
					t.Fatalf("row %v twice", r["accountid"])
				}
				seen[r["accountid"]] = true
				if i > 0 && compareRows(tc.orderby, rows[i-1], r) > 0 {
					t.Fatalf("rows %d and %d out of order for %s:\n%v\n%v", i-1, i, tc.orderby, rows[i-1], r)
				}
			}
		})
	}
}

// compareRows compares decoded rows by an $orderby, NULLs first, the id
// breaking ties.
func compareRows(orderby string, a, b map[string]any) int {
	for _, term := range strings.Split(orderby, ",") {
		f := strings.Fields(term)
		x, y := a[f[0]], b[f[0]]
		c := 0
		switch {
		case x == nil && y == nil:
		case x == nil:
			c = -1
		case y == nil:
			c = 1
		default:
			switch xv := x.(type) {
			case float64:
				c = cmpFloat(xv, y.(float64))
			case string:
				c = strings.Compare(xv, y.(string))
			case bool:
				if xv != y.(bool) {
					c = 1
					if !xv {
						c = -1
					}
				}
			}
		}
		if len(f) == 2 && f[1] == "desc" {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(a["accountid"].(string), b["accountid"].(string))
}

func TestRequestLog(t *testing.T) {
	var logs bytes.Buffer
	v := start(t, Config{Scale: 1, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	v.do(t, "GET", "accounts(00000000-0000-0000-0000-000000000001)", "")
	if !strings.Contains(logs.String(), "status=404") || !strings.Contains(logs.String(), "url=/api/data/v9.2/accounts(") {
		t.Errorf("debug log lacks the request: %s", logs.String())
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no dir", Config{}, "Config.Dir is empty"},
		{"negative scale", Config{Dir: t.TempDir(), Scale: -1}, "negative"},
		{"unknown table", Config{Dir: t.TempDir(), Counts: map[string]int{"invoice": 3}}, `Counts["invoice"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestMetadataCSDL checks that $metadata is well-formed XML naming every
// table's entity type (keyed by its primary id) and entity set.
func TestMetadataCSDL(t *testing.T) {
	v := start(t, Config{Scale: 2, Seed: 1, ExtraTables: 1})
	a := v.do(t, "GET", "$metadata", "")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/xml" {
		t.Fatalf("GET $metadata: HTTP %d %s", a.status, a.header.Get("Content-Type"))
	}
	var doc struct {
		Types []struct {
			Name string `xml:"Name,attr"`
			Key  struct {
				Ref struct {
					Name string `xml:"Name,attr"`
				} `xml:"PropertyRef"`
			} `xml:"Key"`
		} `xml:"DataServices>Schema>EntityType"`
		Sets []struct {
			Name string `xml:"Name,attr"`
			Type string `xml:"EntityType,attr"`
		} `xml:"DataServices>Schema>EntityContainer>EntitySet"`
	}
	if err := xml.Unmarshal(a.body, &doc); err != nil {
		t.Fatalf("$metadata is not well-formed XML: %v", err)
	}
	keys, sets := map[string]string{}, map[string]string{}
	for _, et := range doc.Types {
		keys[et.Name] = et.Key.Ref.Name
	}
	for _, s := range doc.Sets {
		sets[s.Name] = s.Type
	}
	for _, tb := range v.e.tables {
		if keys[tb.Name] != tb.PrimaryID {
			t.Errorf("entity type %s: key %q, want %q", tb.Name, keys[tb.Name], tb.PrimaryID)
		}
		if sets[tb.SetName] != "Microsoft.Dynamics.CRM."+tb.Name {
			t.Errorf("entity set %s: type %q", tb.SetName, sets[tb.SetName])
		}
	}
}
