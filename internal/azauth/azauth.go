// Package azauth builds the Microsoft Entra ID credentials of a profile's
// auth block: a client secret or certificate of an app registration, or a
// managed identity. The Dataverse source (source.auth) and the Azure lake
// store (lake.auth) sign in through it, so both accept the same keys and
// mean the same by them.
//
// Secrets are read from a variable or a file, never from a message: no error
// this package builds holds one.
package azauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Auth says how to sign in to Entra ID. Exactly one method applies, chosen
// in this order: managed identity, a client certificate, a client secret.
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
	// AuthorityHost is the Entra ID endpoint; empty means the public cloud
	// (https://login.microsoftonline.com/). Sovereign clouds set theirs.
	AuthorityHost string
}

// Set reports whether a names a sign-in method.
func (a Auth) Set() bool {
	return a.ManagedIdentity || a.CertificateFile != "" || a.ClientSecret != "" || a.ClientSecretEnv != "" || a.ClientSecretFile != ""
}

// String shows which method a uses and never a secret.
func (a Auth) String() string {
	switch {
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

// Credential returns the credential of a's method, or nil when a names none
// (Set is false). opts carries the transport the sign-in requests use.
func Credential(a Auth, opts azcore.ClientOptions) (azcore.TokenCredential, error) {
	if a.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.AuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	}
	var (
		cred azcore.TokenCredential
		err  error
	)
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
			return nil, fmt.Errorf("reading certificate_file: %w", rerr)
		}
		certs, key, perr := azidentity.ParseCertificates(data, nil)
		if perr != nil {
			return nil, fmt.Errorf("certificate_file %s holds no usable certificate and unencrypted private key (PEM or PKCS#12): %w", a.CertificateFile, perr)
		}
		cred, err = azidentity.NewClientCertificateCredential(a.TenantID, a.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: a.AuthorityHost != ""})
	case a.ClientSecret != "" || a.ClientSecretEnv != "" || a.ClientSecretFile != "":
		if err := needIDs(a); err != nil {
			return nil, err
		}
		s, serr := Secret(a.ClientSecret, a.ClientSecretEnv, a.ClientSecretFile, "client secret")
		if serr != nil {
			return nil, serr
		}
		cred, err = azidentity.NewClientSecretCredential(a.TenantID, a.ClientID, s,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: a.AuthorityHost != ""})
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a, err)
	}
	return cred, nil
}

func needIDs(a Auth) error {
	if a.TenantID == "" || a.ClientID == "" {
		return errors.New("client credentials need tenant_id and client_id (the app registration's Directory (tenant) ID and Application (client) ID)")
	}
	return nil
}

// Secret returns the first of value, the variable env and the file's
// content that is set, or "" when none is. what names it in errors, which
// never hold the value.
func Secret(value, env, file, what string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("the %s variable %s is empty or unset: export it before starting lakelink", what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the %s file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("the %s file %s is empty", what, file)
		}
		return v, nil
	}
	return "", nil
}
