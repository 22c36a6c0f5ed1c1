package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestFilter checks $filter on plain reads against an independent
// predicate over the rows of an unfiltered read.
func TestFilter(t *testing.T) {
	v := start(t, Config{Scale: 60, Seed: 3})
	const sel = "$select=name,revenue,numberofemployees,statecode,donotemail,createdon,_primarycontactid_value,address1_latitude,description"
	all := decodePage(t, v.do(t, "GET", "accounts?"+sel, "")).Value
	if len(all) != 60 {
		t.Fatalf("%d accounts, want 60", len(all))
	}
	first := all[0]
	name := first["name"].(string)
	contact, _ := first["_primarycontactid_value"].(string)
	lower := func(r map[string]any, k string) string { s, _ := r[k].(string); return strings.ToLower(s) }
	num := func(r map[string]any, k string) (float64, bool) { f, ok := r[k].(float64); return f, ok }
	tests := []struct {
		filter string
		want   func(r map[string]any) bool
	}{
		{"name eq '" + strings.ReplaceAll(strings.ToUpper(name), "'", "''") + "'", func(r map[string]any) bool { return lower(r, "name") == strings.ToLower(name) }},
		{"contains(name,'a')", func(r map[string]any) bool { return strings.Contains(lower(r, "name"), "a") }},
		{"startswith(name,'C')", func(r map[string]any) bool { return strings.HasPrefix(lower(r, "name"), "c") }},
		{"endswith(name,'S')", func(r map[string]any) bool { return strings.HasSuffix(lower(r, "name"), "s") }},
		{"not contains(name,'a')", func(r map[string]any) bool { return r["name"] != nil && !strings.Contains(lower(r, "name"), "a") }},
		{"contains(name,'a') or startswith(name,'b')", func(r map[string]any) bool {
			return strings.Contains(lower(r, "name"), "a") || strings.HasPrefix(lower(r, "name"), "b")
		}},
		{"(contains(name,'e') or statecode eq 1) and donotemail eq false", func(r map[string]any) bool {
			return (strings.Contains(lower(r, "name"), "e") || r["statecode"] == 1.0) && r["donotemail"] == false
		}},
		{"revenue gt 500000", func(r map[string]any) bool { f, ok := num(r, "revenue"); return ok && f > 500000 }},
		{"revenue ge 500000.5 and revenue lt 2e8", func(r map[string]any) bool { f, ok := num(r, "revenue"); return ok && f >= 500000.5 && f < 2e8 }},
		{"revenue le 100000 or revenue eq null", func(r map[string]any) bool { f, ok := num(r, "revenue"); return !ok || f <= 100000 }},
		{"revenue ne null", func(r map[string]any) bool { _, ok := num(r, "revenue"); return ok }},
		{"numberofemployees ne 10", func(r map[string]any) bool { return r["numberofemployees"] != 10.0 }},
		{"address1_latitude lt -10.5", func(r map[string]any) bool { f, ok := num(r, "address1_latitude"); return ok && f < -10.5 }},
		{"donotemail", func(r map[string]any) bool { return r["donotemail"] == true }},
		{"not donotemail", func(r map[string]any) bool { return r["donotemail"] == false }},
		{"createdon ge 2022-01-01", func(r map[string]any) bool { s, _ := r["createdon"].(string); return s >= "2022-01-01T00:00:00Z" }},
		{"createdon lt 2021-06-01T12:00:00Z", func(r map[string]any) bool {
			s, _ := r["createdon"].(string)
			return s != "" && s < "2021-06-01T12:00:00Z"
		}},
		{"_primarycontactid_value eq " + strings.ToUpper(contact), func(r map[string]any) bool { return r["_primarycontactid_value"] == contact }},
		{"_primarycontactid_value eq null", func(r map[string]any) bool { return r["_primarycontactid_value"] == nil }},
		{"500000 lt revenue", func(r map[string]any) bool { f, ok := num(r, "revenue"); return ok && f > 500000 }},
		{"contains(description,'%')", func(r map[string]any) bool { return r["description"] != nil }},
		{"startswith(name,'[a-c]')", func(r map[string]any) bool { n := lower(r, "name"); return n != "" && n[0] >= 'a' && n[0] <= 'c' }},
		{"startswith(name,'_')", func(r map[string]any) bool { return lower(r, "name") != "" }},
		{"name eq name", func(r map[string]any) bool { return true }},
		{"true", func(r map[string]any) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			var want []string
			for _, r := range all {
				if tc.want(r) {
					want = append(want, r["accountid"].(string))
				}
			}
			var got []string
			for _, r := range decodePage(t, v.do(t, "GET", "accounts?"+sel+"&$filter="+url.QueryEscape(tc.filter), "")).Value {
				got = append(got, r["accountid"].(string))
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %d rows %v, want %d %v", len(got), got, len(want), want)
			}
		})
	}
}

// TestFilterErrors checks that filters the emulator does not evaluate are
// refused with the service's error code and message.
func TestFilterErrors(t *testing.T) {
	v := start(t, Config{Scale: 2, Seed: 3})
	tests := []struct{ filter, message string }{
		{"nosuch eq 1", "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'."},
		{"revenue eq 'abc'", "A binary operator with incompatible types was detected. Found operand types 'Edm.Decimal' and 'Edm.String' for operator kind 'Equal'."},
		{"name gt 5", "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'GreaterThan'."},
		{"frobnicate(name,'a')", "An unknown function with name 'frobnicate' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."},
		{"contains(revenue,'1')", "No function signature for the function with name 'contains' matches the specified arguments. The function signatures considered are: contains(Edm.String Nullable=true, Edm.String Nullable=true)."},
		{"name eq 'unterminated", "There is an unterminated literal at position 8 in 'name eq 'unterminated'."},
		{"name eq", "Expression expected at position 7 in 'name eq'."},
		{"name eq 'a' 'b'", "Syntax error at position 12 in 'name eq 'a' 'b''."},
		{"(name eq 'a'", "')' or operator expected at position 12 in '(name eq 'a''."},
		{"name", "The $filter expression must evaluate to a single boolean value."},
		{"tolower(name) eq 'a'", "The function 'tolower' is not supported in $filter; use contains, startswith or endswith."},
		{"revenue add 1 eq 2", "The operator 'add' at position 8 in 'revenue add 1 eq 2' is not supported."},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			a := v.do(t, "GET", "accounts?$filter="+url.QueryEscape(tc.filter), "")
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(a.body, &body); err != nil || a.status != http.StatusBadRequest {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if body.Error.Code != codeQueryBuilder || body.Error.Message != tc.message {
				t.Errorf("got %s %q, want %s %q", body.Error.Code, body.Error.Message, codeQueryBuilder, tc.message)
			}
		})
	}
}
