package dataverse

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/azauth"
)

const testSecret = "s3cr3t-Zq9~never-log-me"

// entra fakes the Microsoft Entra ID endpoints a client-credentials sign-in
// uses, and issues "entra-token" for testSecret or a signed client
// assertion (a certificate) only.
func entra(t *testing.T, scope string) *httptest.Server {
	srv := httptest.NewTLSServer(nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
			tenant := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
			_ = json.NewEncoder(w).Encode(map[string]string{
				"token_endpoint":         srv.URL + "/" + tenant + "/oauth2/v2.0/token",
				"authorization_endpoint": srv.URL + "/" + tenant + "/oauth2/v2.0/authorize",
				"issuer":                 srv.URL + "/" + tenant + "/v2.0",
			})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			_ = r.ParseForm()
			signed := r.Form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && r.Form.Get("client_assertion") != ""
			if r.Form.Get("client_secret") != testSecret && !signed || !strings.Contains(r.Form.Get("scope"), scope) {
				t.Logf("entra: scope %q", r.Form.Get("scope"))
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`)
				return
			}
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"entra-token"}`)
		default:
			http.NotFound(w, r)
		}
	})
	t.Cleanup(srv.Close)
	return srv
}

// TestClientSecret signs in with a client secret given each way, and checks
// that the secret shows up in no log line and no error, at debug level, on
// success and on failure.
func TestClientSecret(t *testing.T) {
	f, dv := newFake(t)
	f.set(func(f *fake) { f.token = "entra-token" })
	id := entra(t, dv.URL+"/.default")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LAKELINK_TEST_SECRET", testSecret)
	t.Setenv("LAKELINK_TEST_WRONG_SECRET", "wrong-"+testSecret)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	base := Auth{Auth: azauth.Auth{TenantID: "00000000-0000-0000-0000-0000000000aa", ClientID: "00000000-0000-0000-0000-0000000000bb", AuthorityHost: id.URL + "/"}}
	for _, tc := range []struct {
		name string
		set  func(*Auth)
		ok   bool
	}{
		{"value", func(a *Auth) { a.ClientSecret = testSecret }, true},
		{"env", func(a *Auth) { a.ClientSecretEnv = "LAKELINK_TEST_SECRET" }, true},
		{"file", func(a *Auth) { a.ClientSecretFile = file }, true},
		{"wrong", func(a *Auth) { a.ClientSecretEnv = "LAKELINK_TEST_WRONG_SECRET" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			tc.set(&a)
			cfg := Config{URL: dv.URL, Auth: a, HTTPClient: id.Client(), Logger: logger, RequestsPerSecond: 1000}
			s, err := New(context.Background(), cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("New = %v, want ok=%v", err, tc.ok)
			}
			var out []string
			if err != nil {
				out = append(out, err.Error(), fmt.Sprintf("%v %+v", err, err))
			} else {
				defer s.Close()
				if _, err := s.Describe(context.Background(), "account"); err != nil {
					t.Fatal(err)
				}
			}
			logger.Debug("config", "cfg", cfg, "auth", a)
			out = append(out, fmt.Sprintf("%v|%+v|%#v|%s", cfg, cfg, cfg, a), logs.String())
			for _, o := range out {
				if strings.Contains(o, "s3cr3t") {
					t.Errorf("the secret leaked: %s", o)
				}
			}
		})
	}
}

func TestAuthString(t *testing.T) {
	for _, tc := range []struct {
		a    Auth
		want string
	}{
		{Auth{Token: testSecret}, "static bearer token (redacted)"},
		{Auth{Auth: azauth.Auth{ManagedIdentity: true, ClientID: "c"}}, `managed identity (client_id "c")`},
		{Auth{Auth: azauth.Auth{CertificateFile: "/etc/cert.pem", TenantID: "t", ClientID: "c"}}, `client certificate /etc/cert.pem (tenant "t", client_id "c")`},
		{Auth{Auth: azauth.Auth{ClientSecret: testSecret, TenantID: "t", ClientID: "c"}}, `client secret (redacted) (tenant "t", client_id "c")`},
		{Auth{}, "no authentication"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestCertificateFileErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a    Auth
		want string
	}{
		{Auth{Auth: azauth.Auth{TenantID: "t", ClientID: "c", CertificateFile: bad}}, "holds no usable certificate"},
		{Auth{Auth: azauth.Auth{TenantID: "t", ClientID: "c", CertificateFile: bad + ".missing"}}, "reading certificate_file"},
		{Auth{Auth: azauth.Auth{CertificateFile: bad}}, "need tenant_id and client_id"},
	} {
		_, err := authorizerFor(tc.a, "https://contoso.crm.dynamics.com", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("authorizerFor(%s) = %v, want %q", tc.a, err, tc.want)
		}
	}
}

// TestClientCertificate signs in with a certificate file (PEM with its
// private key).
func TestClientCertificate(t *testing.T) {
	f, dv := newFake(t)
	f.set(func(f *fake) { f.token = "entra-token" })
	id := entra(t, dv.URL+"/.default")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lakelink-test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "app.pem")
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...)
	if err := os.WriteFile(file, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dv.URL, func(c *Config) {
		c.HTTPClient = id.Client()
		c.Auth = Auth{Auth: azauth.Auth{TenantID: "t", ClientID: "c", CertificateFile: file, AuthorityHost: id.URL + "/"}}
	})
	if _, err := s.Tables(context.Background()); err != nil {
		t.Fatal(err)
	}
}
