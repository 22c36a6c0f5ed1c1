package emulator

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestSingleProperty covers GET, PUT and DELETE of one property and the
// counts, with their errors.
func TestSingleProperty(t *testing.T) {
	v := start(t, Config{Scale: 30, Seed: 5})
	acc := seqID(v.e.layout["account"].Base, 3).String()
	missing := seqID(v.e.layout["account"].Base, 999).String()
	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"put", "PUT", "accounts(" + acc + ")/name", `{"value":"Single"}`, http.StatusNoContent, ""},
		{"get", "GET", "accounts(" + acc + ")/name", "", http.StatusOK, `"value":"Single"`},
		{"get raw", "GET", "accounts(" + acc + ")/name/$value", "", http.StatusOK, "Single"},
		{"get lookup", "GET", "accounts(" + acc + ")/_ownerid_value", "", http.StatusOK, `_ownerid_value","value":"`},
		{"delete", "DELETE", "accounts(" + acc + ")/description", "", http.StatusNoContent, ""},
		{"get null", "GET", "accounts(" + acc + ")/description", "", http.StatusNoContent, ""},
		{"put too long", "PUT", "accounts(" + acc + ")/name", `{"value":"` + strings.Repeat("x", 161) + `"}`, http.StatusBadRequest, codeAttributeLength},
		{"put bad body", "PUT", "accounts(" + acc + ")/name", `{"name":"x"}`, http.StatusBadRequest, codeInvalidArgument},
		{"put lookup", "PUT", "accounts(" + acc + ")/_primarycontactid_value", `{"value":null}`, http.StatusBadRequest, codeQueryBuilder},
		{"put missing", "PUT", "accounts(" + missing + ")/name", `{"value":"x"}`, http.StatusNotFound, codeObjectDoesNotExist},
		{"get missing", "GET", "accounts(" + missing + ")/name", "", http.StatusNotFound, codeObjectDoesNotExist},
		{"navigation", "GET", "accounts(" + acc + ")/primarycontactid", "", http.StatusBadRequest, codeQueryBuilder},
		{"count", "GET", "accounts/$count", "", http.StatusOK, "30"},
		{"count filtered", "GET", "accounts/$count?$filter=name%20eq%20'single'", "", http.StatusOK, "1"},
		{"count bad option", "GET", "accounts/$count?$top=1", "", http.StatusBadRequest, codeQueryBuilder},
		{"count post", "POST", "accounts/$count", "{}", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{"count true", "GET", "accounts?$select=name&$count=true&$top=2", "", http.StatusOK, `"@odata.count":30,`},
		{"count bad", "GET", "accounts?$count=yes", "", http.StatusBadRequest, codeQueryBuilder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := v.do(t, tc.method, tc.path, tc.body)
			if a.status != tc.status || !strings.Contains(string(a.body), tc.contains) {
				t.Errorf("%d %s, want %d containing %q", a.status, a.body, tc.status, tc.contains)
			}
		})
	}
}

// TestCountCapped checks that counts stop at 5,000 as the service's do,
// and that @odata.count rides on every page.
func TestCountCapped(t *testing.T) {
	v := start(t, Config{Scale: 10, Counts: map[string]int{"contact": 5003}, Seed: 5})
	if a := v.do(t, "GET", "contacts/$count", ""); string(a.body) != strconv.Itoa(maxCount) {
		t.Errorf("/$count = %s, want %d", a.body, maxCount)
	}
	a := v.do(t, "GET", "contacts?$select=fullname&$count=true", "", "Prefer", `odata.maxpagesize=2,odata.include-annotations="*"`)
	p := decodePage(t, a)
	for _, want := range []string{`"@odata.count":5000`, `"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded":true`} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("first page lacks %s", want)
		}
	}
	if !strings.Contains(p.NextLink, "$count=true") {
		t.Fatalf("next link %s drops $count", p.NextLink)
	}
	if b := v.do(t, "GET", p.NextLink, "", "Prefer", "odata.maxpagesize=2"); !strings.Contains(string(b.body), `"@odata.count":5000`) {
		t.Errorf("second page: %s", b.body)
	}
}

// TestNavigationRef covers single-valued $ref: associate with PUT, read
// with GET, disassociate with DELETE, and the errors.
func TestNavigationRef(t *testing.T) {
	v := start(t, Config{Scale: 3, Seed: 2})
	account := seqID(v.e.layout["account"].Base, 0).String()
	contact := seqID(v.e.layout["contact"].Base, 1).String()
	ref := "accounts(" + account + ")/primarycontactid/$ref"
	if a := v.do(t, "PUT", ref, `{"@odata.id":"`+v.api+`contacts(`+contact+`)"}`); a.status != http.StatusNoContent {
		t.Fatalf("PUT $ref: HTTP %d %s", a.status, a.body)
	}
	a := v.do(t, "GET", ref, "")
	want := `{"@odata.context":"` + v.srv.URL + `/api/data/v9.2/$metadata#$ref","@odata.id":"` + v.srv.URL + `/api/data/v9.2/contacts(` + contact + `)"}`
	if a.status != http.StatusOK || string(a.body) != want {
		t.Fatalf("GET $ref: HTTP %d %s, want %s", a.status, a.body, want)
	}
	if a := v.do(t, "GET", "accounts("+account+")/_primarycontactid_value", ""); !strings.Contains(string(a.body), contact) {
		t.Fatalf("the lookup was not set: %s", a.body)
	}
	if a := v.do(t, "DELETE", ref, ""); a.status != http.StatusNoContent {
		t.Fatalf("DELETE $ref: HTTP %d %s", a.status, a.body)
	}
	if a := v.do(t, "GET", ref, ""); a.status != http.StatusNoContent {
		t.Fatalf("GET $ref of an empty lookup: HTTP %d %s", a.status, a.body)
	}
	for _, c := range []struct{ method, path, body, code string }{
		{"PUT", ref, `{"@odata.id":"` + v.api + `contacts(00000000-0000-0000-0000-000000000009)"}`, codeObjectDoesNotExist},
		{"PUT", ref, `{"@odata.id":"` + v.api + `accounts(` + account + `)"}`, codeInvalidArgument},
		{"PUT", ref, `{"value":1}`, codeInvalidArgument},
		{"PUT", "accounts(00000000-0000-0000-0000-000000000009)/primarycontactid/$ref", `{"@odata.id":"` + v.api + `contacts(` + contact + `)"}`, codeObjectDoesNotExist},
		{"GET", "accounts(" + account + ")/primarycontactid", "", codeQueryBuilder},
	} {
		a := v.do(t, c.method, c.path, c.body)
		if !strings.Contains(string(a.body), c.code) {
			t.Errorf("%s %s %s: HTTP %d %s, want code %s", c.method, c.path, c.body, a.status, a.body, c.code)
		}
	}
}
