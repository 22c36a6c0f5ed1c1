package dataverse

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/lakelink/lakelink/internal/azauth"
)

// Auth says how the connector signs in. Exactly one method applies, chosen
// in this order: a static Token (the emulator's --token), managed identity,
// a client certificate, a client secret (the last three through package
// azauth, as the Azure lake store signs in). With none set, requests carry no
// Authorization header (an emulator started without --token).
//
// Secrets never reach a log line or an error message: Auth formats itself
// with them redacted, and no error the connector builds includes them.
type Auth struct {
	// Auth is the Entra ID sign-in (managed identity, certificate, secret).
	azauth.Auth
	// Token is a static bearer token; TokenEnv names a variable holding one.
	Token    string
	TokenEnv string
}

// String shows which method Auth uses and never a secret.
func (a Auth) String() string {
	if a.Token != "" || a.TokenEnv != "" {
		return "static bearer token (redacted)"
	}
	return a.Auth.String()
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
	token, err := azauth.Secret(a.Token, a.TokenEnv, "", "token")
	if err != nil {
		return nil, fmt.Errorf("dataverse auth: %w", err)
	}
	if token != "" {
		return staticToken(token), nil
	}
	opts := azcore.ClientOptions{}
	if hc != nil {
		opts.Transport = hc
	}
	cred, err := azauth.Credential(a.Auth, opts)
	if err != nil {
		return nil, fmt.Errorf("dataverse auth: %w", err)
	}
	if cred == nil {
		return noAuth{}, nil
	}
	return &entraToken{cred: cred, scope: base + "/.default"}, nil
}
