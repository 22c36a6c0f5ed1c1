package emulator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenHeaders are the response headers golden files record.
var goldenHeaders = []string{"Content-Type", "ETag", "OData-EntityId", "OData-Version", "Preference-Applied", "Retry-After", "WWW-Authenticate"}

// step is one request of a golden conversation. In path, {delta} and
// {next} stand for the delta and next links of the latest answer that had
// one.
type step struct {
	name   string
	method string
	path   string
	body   string
	hdr    []string
	before func(*env)
}

// TestGolden records the exact shape of the emulator's answers: metadata,
// a change-tracking first page, a delta read after writes, and errors.
func TestGolden(t *testing.T) {
	v := start(t, Config{Scale: 4, Seed: 42})
	track := []string{"Prefer", `odata.track-changes, odata.maxpagesize=3, odata.include-annotations="*"`}
	account := seqID(v.e.layout["account"].Base, 1).String()
	deleted := seqID(v.e.layout["account"].Base, 2).String()
	steps := []step{
		{name: "entity_definitions", method: "GET", path: "EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ChangeTrackingEnabled,IsIntersect,ObjectTypeCode"},
		{name: "entity_definition_contact", method: "GET", path: "EntityDefinitions(LogicalName='contact')"},
		{name: "attributes_contact", method: "GET", path: "EntityDefinitions(LogicalName='contact')/Attributes"},
		{name: "attributes_select", method: "GET", path: "EntityDefinitions(LogicalName='accountleads')/Attributes?$select=LogicalName,AttributeType,AttributeTypeName,ColumnNumber"},
		{name: "attribute_string", method: "GET", path: "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength"},
		{name: "picklist_metadata", method: "GET", path: "EntityDefinitions(LogicalName='lead')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet,GlobalOptionSet"},
		{name: "enum_metadata", method: "GET", path: "EntityDefinitions(LogicalName='opportunity')/Attributes/Microsoft.Dynamics.CRM.EnumAttributeMetadata?$select=LogicalName,AttributeType&$expand=OptionSet,GlobalOptionSet"},
		{name: "state_metadata", method: "GET", path: "EntityDefinitions(LogicalName='opportunity')/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata?$select=LogicalName&$expand=OptionSet"},
		{name: "status_metadata", method: "GET", path: "EntityDefinitions(LogicalName='opportunity')/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata?$select=LogicalName&$expand=OptionSet"},
		{name: "global_option_sets", method: "GET", path: "GlobalOptionSetDefinitions"},
		{name: "whoami", method: "GET", path: "WhoAmI"},
		{name: "service_document", method: "GET", path: ""},
		{name: "metadata_csdl", method: "GET", path: "$metadata"},
		{name: "track_first_page", method: "GET", path: "accounts?$select=name,revenue,industrycode,donotemail,_ownerid_value,createdon,versionnumber", hdr: track},
		{name: "track_last_page", method: "GET", path: "{next}", hdr: track},
		{name: "update", method: "PATCH", path: "accounts(" + account + ")", body: `{"name":"Renamed, \"quoted\"\nline","revenue":1234.5,"industrycode":3}`},
		{name: "delete", method: "DELETE", path: "accounts(" + deleted + ")"},
		{name: "create", method: "POST", path: "accounts?$select=name,statecode,statuscode,_ownerid_value",
			body: `{"name":"Created 🚀","primarycontactid@odata.bind":"/contacts(` + seqID(v.e.layout["contact"].Base, 0).String() + `)"}`,
			hdr:  []string{"Prefer", "return=representation"}},
		{name: "delta_after_writes", method: "GET", path: "{delta}", hdr: track},
		{name: "get_one", method: "GET", path: "accounts(" + account + ")?$select=name,revenue,_primarycontactid_value",
			hdr: []string{"Prefer", `odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`}},
		{name: "plain_page", method: "GET", path: "contacts?$select=fullname,birthdate,_parentcustomerid_value&$filter=statecode%20eq%200&$top=2"},
		{name: "error_not_found", method: "GET", path: "accounts(" + deleted + ")"},
		{name: "error_delete_not_found", method: "DELETE", path: "accounts(" + deleted + ")"},
		{name: "error_too_long", method: "POST", path: "accounts", body: `{"name":"` + strings.Repeat("x", 161) + `"}`},
		{name: "error_bad_choice", method: "PATCH", path: "accounts(" + account + ")", body: `{"industrycode":999}`},
		{name: "error_unknown_property", method: "POST", path: "accounts", body: `{"nosuchcolumn":1}`},
		{name: "error_unknown_select", method: "GET", path: "accounts?$select=name,nosuchcolumn"},
		{name: "error_unknown_set", method: "GET", path: "nosuchentities"},
		{name: "error_track_filter", method: "GET", path: "accounts?$select=name&$filter=name%20eq%20'x'&$top=5", hdr: track},
		{name: "error_not_tracked", method: "GET", path: "competitors?$select=name", hdr: track},
		{name: "error_bad_token", method: "GET", path: "accounts?$select=name&$deltatoken=garbage"},
		{name: "error_foreign_token", method: "GET", path: "accounts?$select=name&$deltatoken=10!01/02/2026%2003:04:05"},
		{name: "error_expired_token", method: "GET", path: "accounts?$select=name&$deltatoken=10!01/02/2026%2003:04:05",
			before: func(v *env) { v.e.SetFaults(Faults{TokenMaxAge: 24 * time.Hour}) }},
		{name: "error_throttled", method: "GET", path: "accounts",
			before: func(v *env) { v.e.SetFaults(Faults{ThrottleRate: 1, RetryAfter: 1500 * time.Millisecond}) }},
		{name: "get_property", method: "GET", path: "accounts(" + account + ")/name"},
		{name: "get_property_value", method: "GET", path: "accounts(" + account + ")/name/$value"},
		{name: "put_property", method: "PUT", path: "accounts(" + account + ")/revenue", body: `{"value":99.5}`},
		{name: "count_plain", method: "GET", path: "contacts/$count"},
		{name: "count_true", method: "GET", path: "contacts?$select=fullname&$filter=contains(fullname,'a')%20or%20statecode%20eq%201&$count=true&$top=1",
			hdr: []string{"Prefer", `odata.include-annotations="Microsoft.Dynamics.CRM.totalrecordcount,Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"`}},
		{name: "error_filter_function", method: "GET", path: "accounts?$filter=frobnicate(name,'a')"},
		{name: "error_unknown_property_segment", method: "GET", path: "accounts(" + account + ")/nosuch"},
	}
	var next, delta string
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			v.e.SetFaults(Faults{})
			if s.before != nil {
				s.before(v)
			}
			path := strings.NewReplacer("{next}", next, "{delta}", delta).Replace(s.path)
			a := v.do(t, s.method, path, s.body, s.hdr...)
			var links page
			if json.Unmarshal(a.body, &links) == nil {
				if links.NextLink != "" {
					next = links.NextLink
				}
				if links.DeltaLink != "" {
					delta = links.DeltaLink
				}
			}
			got := render(v, s, path, a)
			compareGolden(t, filepath.Join("testdata", s.name+".golden"), got)
		})
	}
}

// render writes an exchange with the server's address replaced by {org}.
func render(v *env, s step, path string, a answer) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", s.method, strings.TrimPrefix(strings.TrimPrefix(path, v.srv.URL), apiPrefix))
	for i := 0; i+1 < len(s.hdr); i += 2 {
		fmt.Fprintf(&b, "%s: %s\n", s.hdr[i], s.hdr[i+1])
	}
	if s.body != "" {
		fmt.Fprintf(&b, "\n%s\n", s.body)
	}
	fmt.Fprintf(&b, "\nHTTP %d\n", a.status)
	for _, h := range goldenHeaders {
		if val := a.header.Get(h); val != "" {
			fmt.Fprintf(&b, "%s: %s\n", h, val)
		}
	}
	if len(a.body) > 0 {
		b.WriteByte('\n')
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, a.body, "", "  "); err != nil {
			pretty.Reset()
			pretty.Write(a.body)
		}
		b.Write(pretty.Bytes())
		b.WriteByte('\n')
	}
	return bytes.ReplaceAll(b.Bytes(), []byte(v.srv.URL), []byte("{org}"))
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
