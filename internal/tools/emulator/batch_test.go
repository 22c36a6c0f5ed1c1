package emulator

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// batchBody builds a multipart/mixed batch body from parts, each either
// one request ("METHOD url\r\nheaders\r\n\r\nbody") or a change set (a
// []string of requests, numbered as Content-IDs 1, 2, ...).
func batchBody(parts ...any) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--batch_x\r\n")
		switch p := p.(type) {
		case string:
			b.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" + p + "\r\n")
		case []string:
			b.WriteString("Content-Type: multipart/mixed; boundary=changeset_y\r\n\r\n")
			for i, req := range p {
				b.WriteString("--changeset_y\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
				b.WriteString("Content-ID: " + string(rune('1'+i)) + "\r\n\r\n" + req + "\r\n")
			}
			b.WriteString("--changeset_y--\r\n")
		}
	}
	b.WriteString("--batch_x--\r\n")
	return b.String()
}

var batchCT = []string{"Content-Type", "multipart/mixed; boundary=batch_x"}

func TestBatch(t *testing.T) {
	v := start(t, Config{Scale: 3, Seed: 9})
	boundaries := regexp.MustCompile(`(batchresponse|changesetresponse)_[0-9a-f-]{36}`)
	ids := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	body := batchBody(
		[]string{
			"POST " + v.api + "accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Batch account\"}",
			"POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\nPrefer: return=representation\r\n\r\n{\"lastname\":\"Batch\",\"parentcustomerid_account@odata.bind\":\"$1\"}\r\n",
			"PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"telephone1\":\"555\"}",
			"PUT $1/accountnumber HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"value\":\"B-1\"}",
		},
		"GET accounts?$select=name,telephone1,accountnumber&$filter=name%20eq%20'batch%20account' HTTP/1.1\r\nAccept: application/json\r\n",
		"GET contacts/$count HTTP/1.1\r\n",
	)
	a := v.do(t, "POST", "$batch", body, batchCT...)
	if a.status != http.StatusOK {
		t.Fatalf("batch: %d %s", a.status, a.body)
	}
	got := boundaries.ReplaceAll(a.body, []byte("${1}_B"))
	got = ids.ReplaceAll(got, []byte("ID"))
	compareGolden(t, filepath.Join("testdata", "batch.golden"), []byte(strings.ReplaceAll(string(got), v.srv.URL, "{org}")))
	if n := v.do(t, "GET", "accounts/$count?$filter=accountnumber%20eq%20'B-1'%20and%20telephone1%20eq%20'555'", ""); string(n.body) != "1" {
		t.Errorf("change set not committed: %s", n.body)
	}

	tests := []struct {
		name     string
		body     string
		hdr      []string
		status   int
		contains []string
		accounts string // accounts/$count after
	}{
		{"change set rolls back", batchBody([]string{
			"POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"rolled back\"}",
			"POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"" + strings.Repeat("x", 161) + "\"}",
		}), nil, http.StatusBadRequest, []string{"HTTP/1.1 400 Bad Request", codeAttributeLength}, "4"},
		{"stops at the first failure", batchBody(
			"DELETE accounts(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\n",
			"POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"not run\"}",
		), nil, http.StatusNotFound, []string{"HTTP/1.1 404 Not Found", codeObjectDoesNotExist}, "4"},
		{"continue on error", batchBody(
			"DELETE accounts(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\n",
			"POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"run\"}",
		), []string{"Prefer", "odata.continue-on-error"}, http.StatusOK, []string{"HTTP/1.1 404 Not Found", "HTTP/1.1 204 No Content"}, "5"},
		{"unknown reference", batchBody([]string{"PATCH $7 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}"}),
			nil, http.StatusBadRequest, []string{"Content-ID Reference: '$7' does not exist in the batch context."}, "5"},
		{"GET in a change set", batchBody([]string{"GET accounts HTTP/1.1\r\n"}), nil, http.StatusBadRequest, []string{"not allowed in a change set"}, "5"},
		{"nested batch", batchBody("POST $batch HTTP/1.1\r\n"), nil, http.StatusBadRequest, []string{"another batch"}, "5"},
		{"not multipart", "{}", []string{"Content-Type", "application/json"}, http.StatusBadRequest, []string{codeInvalidArgument}, "5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if len(hdr) == 0 || hdr[0] != "Content-Type" {
				hdr = append(hdr, batchCT...)
			}
			a := v.do(t, "POST", "$batch", tc.body, hdr...)
			if a.status != tc.status {
				t.Errorf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			for _, want := range tc.contains {
				if !strings.Contains(string(a.body), want) {
					t.Errorf("answer lacks %q:\n%s", want, a.body)
				}
			}
			if n := v.do(t, "GET", "accounts/$count", ""); string(n.body) != tc.accounts {
				t.Errorf("%s accounts after, want %s", n.body, tc.accounts)
			}
		})
	}
}
