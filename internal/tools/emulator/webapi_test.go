package emulator

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/testdeps"
)

// webapiDir holds the Node script and the package.json/package-lock.json
// that pin the npm client dynamics-web-api.
const webapiDir = "testdata/webapi"

// TestWebAPIClient runs the real npm client dynamics-web-api (pinned in
// testdata/webapi/package-lock.json) against the emulator: metadata, CRUD,
// single properties, upsert, ETags, $filter, counts, paging, $batch with
// change sets, and errors. client.js prints what every call answered; this
// test checks each answer, so a gap in the emulator fails here by name.
// Node.js and the installed package are required: `make test` installs
// them (scripts/test-deps.sh); the test fails, never skips, without them.
func TestWebAPIClient(t *testing.T) {
	node := testdeps.Node(t)
	modules := testdeps.NodeModules(t, webapiDir)
	const token = "npm-client-token"
	v := start(t, Config{Scale: 40, Seed: 3, Token: token})

	cmd := exec.Command(node, "client.js")
	cmd.Dir = webapiDir
	cmd.Env = append(cleanEnv(), "NODE_PATH="+modules, "LAKELINK_ORG_URL="+v.srv.URL, "LAKELINK_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node client.js: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("node client.js did not finish in 2 minutes; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("node client.js: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var out struct {
		Results []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
			Error *struct {
				Status  int    `json:"status"`
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node client.js printed no JSON result document: %v\n%s", err, stdout.String())
	}

	// Ids the script created, for the answers that name them.
	ids := map[string]string{}
	for _, r := range out.Results {
		var id string
		switch r.Name {
		case "create", "create.bind":
			_ = json.Unmarshal(r.Value, &id)
		case "create.returnRepresentation":
			var row struct{ Accountid string }
			_ = json.Unmarshal(r.Value, &row)
			id = row.Accountid
		default:
			continue
		}
		ids["{"+r.Name+"}"] = id
	}
	ids["{caller}"] = v.e.callerID.String()
	ids["{bu}"] = v.e.buID.String()
	ids["{org}"] = v.e.orgID.String()
	expand := func(s string) string {
		for k, id := range ids {
			s = strings.ReplaceAll(s, k, id)
		}
		return s
	}

	// Each call's expected answer: a JSON value, "guid" for a new id, or
	// an error as "error <status> <code> <message start>".
	const lengthMsg = "A validation error occurred. The length of the 'name' attribute of the 'account' entity exceeded the maximum allowed length of '160'."
	want := map[string]string{
		"whoami":                      `{"UserId":"{caller}","BusinessUnitId":"{bu}","OrganizationId":"{org}"}`,
		"retrieveEntities":            `["account=accounts","accountleads=accountleadscollection","competitor=competitors","contact=contacts","lead=leads","opportunity=opportunities","systemuser=systemusers"]`,
		"retrieveEntity":              `{"LogicalName":"account","PrimaryIdAttribute":"accountid","EntitySetName":"accounts"}`,
		"retrieveAttributes":          `["accountid","name","revenue"]`,
		"retrieveAttribute.picklist":  `{"name":"industrycode","options":true}`,
		"retrieveGlobalOptionSets":    `["lakelink_rating"]`,
		"retrieveCsdlMetadata":        `{"isEdmx":true,"account":true,"accountSet":true}`,
		"create":                      "guid",
		"create.returnRepresentation": `{"accountid":"{create.returnRepresentation}","name":"npm Beta","numberofemployees":20}`,
		"create.gamma":                "guid",
		"create.delta":                "guid",
		"create.bind":                 "guid",
		"create.byEntityName":         "guid",
		"create.tooLong":              "error 400 0x80044331 " + lengthMsg,
		"create.badChoice":            "error 400 0x8004431a A validation error occurred. The value 999 of 'industrycode'",
		"retrieve":                    `{"accountid":"{create}","name":"npm Alpha","numberofemployees":10,"revenue":1000.5,"telephone1":"555-0100"}`,
		"retrieve.formatted":          `{"industry":"Accounting","donotemail":"No"}`,
		"retrieve.lookup":             `{"fullname":"Ada Npm","_parentcustomerid_value":"{create}"}`,
		"associateSingleValued":       `{"ref":{"id":"{create.bind}","collection":"contacts"},"lookupSet":true}`,
		"disassociateSingleValued":    `null`,
		"batch.associate":             `{"lookupSet":true}`,
		"retrieve.property":           `"npm Alpha"`,
		"retrieve.propertyValue":      `10`,
		"updateSingleProperty":        `"npm Alpha Renamed"`,
		"deleteProperty":              `null`,
		"retrieve.unknownProperty":    "error 404 0x8006088a Resource not found for the segment 'nosuchcolumn'.",
		"update":                      `11`,
		"update.returnRepresentation": `{"name":"npm Beta","numberofemployees":21}`,
		"update.missing":              "error 404 0x80040217 Entity 'account' With Id = 00000000-0000-0000-0000-00000000abcd Does Not Exist",
		"upsert.create":               `"npm Upserted"`,
		"upsert.update":               `{"name":"npm Upserted","numberofemployees":61}`,
		"upsert.createOnly":           `{"result":null,"name":"npm Upserted"}`,
		"etag":                        `{"etag":true,"notModified":true,"matched":true,"stale":false,"employees":62}`,
		"filter.startswith":           `["npm Alpha Renamed","npm Beta","npm Epsilon","npm Gamma Corp","npm Upserted"]`,
		"filter.contains":             `["npm Gamma Corp"]`,
		"filter.endswith":             `["Delta by npm"]`,
		"filter.not":                  `["Delta by npm"]`,
		"filter.or":                   `["Delta by npm","npm Beta"]`,
		"filter.gt":                   `["Delta by npm","npm Epsilon","npm Upserted"]`,
		"filter.ge.le":                `["Delta by npm","npm Beta","npm Gamma Corp"]`,
		"filter.lt.ne":                `["npm Alpha Renamed","npm Gamma Corp"]`,
		"filter.null":                 `["Delta by npm","npm Alpha Renamed","npm Beta","npm Epsilon","npm Upserted"]`,
		"filter.bool":                 `["Delta by npm"]`,
		"filter.guid":                 `["npm Beta"]`,
		"filter.lookup":               `["Ada Npm"]`,
		"filter.date":                 `6`,
		"orderBy.top":                 `["npm Upserted","npm Epsilon","Delta by npm"]`,
		"filter.unsupportedFunction":  "error 400 0x80060888 The function 'tolower' is not supported",
		"expand.unsupported":          "error 400 0x80060888 The query option '$expand' is not supported",
		"filter.unknownProperty":      "error 400 0x80060888 Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'.",
		"fetchXml.unsupported":        "error 400 0x80060888 The query option 'fetchXml' is not supported",
		"count":                       `41`,
		"count.filter":                `6`,
		"retrieveMultiple.count":      `{"count":5,"rows":5}`,
		"countAll":                    `6`,
		"paging.nextLink":             `{"first":15,"second":15,"distinct":30,"more":true}`,
		"retrieveAll":                 `{"rows":41,"distinct":41}`,
		"batch.changeSet":             `{"responses":3,"parent":{"name":"npm Batch Parent","telephone1":"555-0700"},"childParentOK":true}`,
		"batch.reads":                 `{"names":["npm Beta"],"count":43,"employees":21}`,
		"batch.rollback":              `{"error":{"batch":[{"status":400,"code":"0x80044331","message":"` + lengthMsg + `"}]},"left":0}`,
		"delete":                      `{"status":404,"code":"0x80040217","message":"Entity 'account' With Id = {create.returnRepresentation} Does Not Exist"}`,
		"delete.missing":              "error 404 0x80040217 Entity 'account' With Id = {create.returnRepresentation} Does Not Exist",
		"unknownEntity":               "error 404 0x8006088a Resource not found for the segment 'nosuchentities'.",
		"unknownEntity.byEntityName":  "error 404 0x8006088a Resource not found for the segment 'nosuchentity'.",
		// Dataverse answers a bad token 401 with an empty body; the client
		// reports that as "Unexpected Error".
		"badToken": "error 401  Unexpected Error",
	}
	if len(want) < 35 {
		t.Fatalf("only %d client calls checked; the test promises at least 35", len(want))
	}
	guid := regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"$`)
	seen := map[string]bool{}
	for _, r := range out.Results {
		seen[r.Name] = true
		w, ok := want[r.Name]
		if !ok {
			t.Errorf("%s: client.js ran a call this test does not check; add its expected answer", r.Name)
			continue
		}
		w = expand(w)
		if exp, isErr := strings.CutPrefix(w, "error "); isErr {
			if r.Error == nil {
				t.Errorf("%s: want an error %s, got %s", r.Name, exp, r.Value)
				continue
			}
			got := strings.Join([]string{strconv.Itoa(r.Error.Status), r.Error.Code, r.Error.Message}, " ")
			if !strings.HasPrefix(got, exp) {
				t.Errorf("%s: error\n got %s\nwant %s...", r.Name, got, exp)
			}
			continue
		}
		if r.Error != nil {
			t.Errorf("%s: failed: HTTP %d %s %s", r.Name, r.Error.Status, r.Error.Code, r.Error.Message)
			continue
		}
		if w == "guid" {
			if !guid.Match(r.Value) {
				t.Errorf("%s: want a new record id, got %s", r.Name, r.Value)
			}
			continue
		}
		if !jsonEqual(t, r.Value, []byte(w)) {
			t.Errorf("%s:\n got %s\nwant %s", r.Name, r.Value, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s: client.js printed no answer for this call", name)
		}
	}
	if s := v.e.Stats(); s.Unauthorized != 1 {
		t.Errorf("emulator counted %d unauthorized requests; only the badToken call should be", s.Unauthorized)
	}
}

// cleanEnv is the test's environment without proxy settings: the client
// sends loopback requests through http_proxy when it is set.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "node_path", "node_options":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("answer %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("expected answer %s is not JSON: %v", b, err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
