package dataverse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Auth says how the connector signs in. Exactly one method applies, chosen
// in this order: a static Token (the emulator's --token), managed identity,
// a client certificate, a client secret. With none set, requests carry no
// Authorization header (an emulator started without --token).
//
// Secrets never reach a log line or an error message: Auth formats itself
// with them redacted, and no error the connector builds includes them.
type Auth struct {
	TenantID string
	ClientID string
	// ClientSecret is the secret itself; ClientSecretEnv names an environment
	// variable and ClientSecretFile a file that holds it instead.
	ClientSecret     string
	ClientSecretEnv  string
	ClientSecretFile string
	// CertificateFile is a PEM or PKCS#12 file with the certificate and its
	// unencrypted private key.
	CertificateFile string
	// ManagedIdentity signs in as the Azure resource's managed identity;
	// ClientID, when set, picks a user-assigned one.
	ManagedIdentity bool
	// Token is a static bearer token; TokenEnv names a variable holding one.
	Token    string
	TokenEnv string
	// AuthorityHost is the Entra ID endpoint; empty means the public cloud
	// (https://login.microsoftonline.com/). Sovereign clouds set theirs.
	AuthorityHost string
}

// String shows which method Auth uses and never a secret.
func (a Auth) String() string {
	switch {
	case a.Token != "" || a.TokenEnv != "":
		return "static bearer token (redacted)"
	case a.ManagedIdentity:
		return fmt.Sprintf("managed identity (client_id %q)", a.ClientID)
	case a.CertificateFile != "":
		return fmt.Sprintf("client certificate %s (tenant %q, client_id %q)", a.CertificateFile, a.TenantID, a.ClientID)
	case a.ClientSecret != "" || a.ClientSecretEnv != "" || a.ClientSecretFile != "":
		return fmt.Sprintf("client secret (redacted) (tenant %q, client_id %q)", a.TenantID, a.ClientID)
	default:
		return "no authentication"
	}
}

// GoString keeps %#v from printing the fields.
func (a Auth) GoString() string { return "dataverse.Auth{" + a.String() + "}" }

// LogValue keeps slog from printing the fields.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// noAuth sends requests without credentials.
type noAuth struct{}

func (noAuth) header(context.Context) (string, error) { return "", nil }

// staticToken sends a fixed bearer token.
type staticToken string

func (t staticToken) header(context.Context) (string, error) { return "Bearer " + string(t), nil }

// entraToken gets tokens from Entra ID for scope and reuses each until
// shortly before it expires.
type entraToken struct {
	cred  azcore.TokenCredential
	scope string

	mu      sync.Mutex
	token   string
	refresh time.Time
}

func (e *entraToken) header(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token != "" && time.Now().Before(e.refresh) {
		return "Bearer " + e.token, nil
	}
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.scope}})
	if err != nil {
		return "", fmt.Errorf("dataverse: getting an Entra ID token for %s: %w", e.scope, err)
	}
	e.token = tok.Token
	// Refresh five minutes early so no request leaves with a token that
	// expires in flight.
	e.refresh = tok.ExpiresOn.Add(-5 * time.Minute)
	return "Bearer " + e.token, nil
}

// authorizerFor builds the authorizer for a, whose tokens are meant for the
// environment at base (scope "<base>/.default").
func authorizerFor(a Auth, base string, hc *http.Client) (authorizer, error) {
	token, err := secret(a.Token, a.TokenEnv, "", "token")
	if err != nil {
		return nil, err
	}
	if token != "" {
		return staticToken(token), nil
	}
	opts := azcore.ClientOptions{}
	if hc != nil {
		opts.Transport = hc
	}
	if a.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.AuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	}
	var cred azcore.TokenCredential
	switch {
	case a.ManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if a.ClientID != "" {
			mo.ID = azidentity.ClientID(a.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	case a.CertificateFile != "":
		if err := needIDs(a); err != nil {
			return nil, err
		}
		data, rerr := os.ReadFile(a.CertificateFile)
		if rerr != nil {
			return nil, fmt.Errorf("dataverse auth: reading certificate_file: %w", rerr)
		}
		certs, key, perr := azidentity.ParseCertificates(data, nil)
		if perr != nil {
			return nil, fmt.Errorf("dataverse auth: certificate_file %s holds no usable certificate and unencrypted private key (PEM or PKCS#12): %w", a.CertificateFile, perr)
		}
		cred, err = azidentity.NewClientCertificateCredential(a.TenantID, a.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: a.AuthorityHost != ""})
	case a.ClientSecret != "" || a.ClientSecretEnv != "" || a.ClientSecretFile != "":
		if err := needIDs(a); err != nil {
			return nil, err
		}
		s, serr := secret(a.ClientSecret, a.ClientSecretEnv, a.ClientSecretFile, "client secret")
		if serr != nil {
			return nil, serr
		}
		cred, err = azidentity.NewClientSecretCredential(a.TenantID, a.ClientID, s,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: a.AuthorityHost != ""})
	default:
		return noAuth{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dataverse auth (%s): %w", a, err)
	}
	return &entraToken{cred: cred, scope: base + "/.default"}, nil
}

func needIDs(a Auth) error {
	if a.TenantID == "" || a.ClientID == "" {
		return errors.New("dataverse auth: client credentials need tenant_id and client_id (the app registration's Directory (tenant) ID and Application (client) ID)")
	}
	return nil
}

// secret returns the first of value, the variable env and the file's
// content that is set. what names it in errors, which never hold the value.
func secret(value, env, file, what string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("dataverse auth: the %s variable %s is empty or unset: export it before starting lakelink", what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("dataverse auth: reading the %s file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("dataverse auth: the %s file %s is empty", what, file)
		}
		return v, nil
	}
	return "", nil
}
