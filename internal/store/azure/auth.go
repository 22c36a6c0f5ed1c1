package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/lakelink/lakelink/internal/azauth"
)

// The environment variables of the Azure CLI that name a shared key or a
// SAS token, read when the URL's settings name no credential.
const (
	envAccount = "AZURE_STORAGE_ACCOUNT"
	envKey     = "AZURE_STORAGE_KEY"
	envSAS     = "AZURE_STORAGE_SAS_TOKEN"
)

// Query keys of an Azure lake URL. Config folds lake.endpoint and the keys
// of lake.auth into them (the same names); a URL given to --lake may carry
// them itself. None holds a secret: secrets are named by a variable or a file.
var queryKeys = []string{
	"endpoint",
	"tenant_id", "client_id", "client_secret_env", "client_secret_file", "certificate_file", "managed_identity", "authority_host",
	"account_key_env", "account_key_file", "sas_token_env", "sas_token_file",
}

// settings are a lake URL's query.
type settings struct {
	endpoint                      string
	entra                         azauth.Auth
	accountKeyEnv, accountKeyFile string
	sasTokenEnv, sasTokenFile     string
}

func parseQuery(q url.Values) (settings, error) {
	var s settings
	for k, v := range q {
		if !slices.Contains(queryKeys, k) {
			return s, fmt.Errorf("the setting %q is not one of the Azure store's: %s", k, strings.Join(queryKeys, ", "))
		}
		if len(v) != 1 {
			return s, fmt.Errorf("the setting %q is given %d times", k, len(v))
		}
	}
	s.endpoint = q.Get("endpoint")
	if s.endpoint != "" {
		e, err := url.Parse(s.endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.RawQuery != "" {
			return s, fmt.Errorf("endpoint %q is not an http(s) URL of a Blob service, such as http://127.0.0.1:10000/devstoreaccount1 (Azurite) or https://ACCOUNT.blob.core.chinacloudapi.cn", s.endpoint)
		}
	}
	s.entra = azauth.Auth{
		TenantID: q.Get("tenant_id"), ClientID: q.Get("client_id"),
		ClientSecretEnv: q.Get("client_secret_env"), ClientSecretFile: q.Get("client_secret_file"),
		CertificateFile: q.Get("certificate_file"), AuthorityHost: q.Get("authority_host"),
	}
	if mi := q.Get("managed_identity"); mi != "" {
		b, err := strconv.ParseBool(mi)
		if err != nil {
			return s, fmt.Errorf("managed_identity %q is not true or false", mi)
		}
		s.entra.ManagedIdentity = b
	}
	s.accountKeyEnv, s.accountKeyFile = q.Get("account_key_env"), q.Get("account_key_file")
	s.sasTokenEnv, s.sasTokenFile = q.Get("sas_token_env"), q.Get("sas_token_file")
	methods := 0
	for _, set := range []bool{s.accountKeyEnv != "" || s.accountKeyFile != "", s.sasTokenEnv != "" || s.sasTokenFile != "", s.entra.Set()} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		return s, errors.New("name one credential: an account key (account_key_env or account_key_file), a SAS token (sas_token_env or sas_token_file) or an Entra ID sign-in (client secret, certificate or managed identity)")
	}
	if s.accountKeyEnv != "" && s.accountKeyFile != "" || s.sasTokenEnv != "" && s.sasTokenFile != "" || s.entra.ClientSecretEnv != "" && s.entra.ClientSecretFile != "" {
		return s, errors.New("give a secret's variable or its file, not both")
	}
	return s, nil
}

// credential is how the store signs its requests.
type credential interface {
	// client returns the client of the container at containerURL.
	client(containerURL string, o *container.ClientOptions) (*container.Client, error)
	// copySource returns the URL Copy Blob From URL reads src from and the
	// source's authorization header, if it needs one.
	copySource(ctx context.Context, src *blockblob.Client) (string, *string, error)
	// denied says what to do when the service refuses a request (403).
	denied(account, container string) string
	// String names the method and where its secret comes from, never the secret.
	String() string
}

// credentialFor picks the credential: the one the settings name, else an
// account key or SAS token in the Azure CLI's variables, else Entra ID's
// default chain (environment, workload identity, managed identity, Azure CLI).
func credentialFor(q settings, account string, opts azcore.ClientOptions) (credential, error) {
	switch {
	case q.accountKeyEnv != "" || q.accountKeyFile != "":
		key, err := azauth.Secret("", q.accountKeyEnv, q.accountKeyFile, "account key")
		if err != nil {
			return nil, err
		}
		return newSharedKey(account, key, from(q.accountKeyEnv, q.accountKeyFile))
	case q.sasTokenEnv != "" || q.sasTokenFile != "":
		tok, err := azauth.Secret("", q.sasTokenEnv, q.sasTokenFile, "SAS token")
		if err != nil {
			return nil, err
		}
		return sasToken{token: strings.TrimPrefix(tok, "?"), from: from(q.sasTokenEnv, q.sasTokenFile)}, nil
	case q.entra.Set():
		// Token requests go through the transport, not the storage
		// policies.
		cred, err := azauth.Credential(q.entra, azcore.ClientOptions{Transport: opts.Transport})
		if err != nil {
			return nil, fmt.Errorf("lake auth: %w", err)
		}
		return entra{cred: cred, method: q.entra.String()}, nil
	}
	if key := strings.TrimSpace(os.Getenv(envKey)); key != "" {
		if a := os.Getenv(envAccount); a != "" && a != account {
			return nil, fmt.Errorf("%s holds the key of the account %s=%s, and the lake is in the account %s: unset them or set them for %s", envKey, envAccount, a, account, account)
		}
		return newSharedKey(account, key, "the variable "+envKey)
	}
	if tok := strings.TrimSpace(os.Getenv(envSAS)); tok != "" {
		return sasToken{token: strings.TrimPrefix(tok, "?"), from: "the variable " + envSAS}, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: opts.Transport}})
	if err != nil {
		return nil, fmt.Errorf("no credential for the lake: set lake.auth, or %s, or sign in with the Azure CLI (az login): %w", envKey, err)
	}
	return entra{cred: cred, method: "Entra ID's default credential chain (environment, workload identity, managed identity, Azure CLI)"}, nil
}

func from(env, file string) string {
	if env != "" {
		return "the variable " + env
	}
	return "the file " + file
}

// sharedKey signs with the storage account's key.
type sharedKey struct {
	cred *container.SharedKeyCredential
	from string
}

func newSharedKey(account, key, from string) (credential, error) {
	cred, err := container.NewSharedKeyCredential(account, key)
	if err != nil {
		// The SDK's message would not name the key, but say where it came from.
		return nil, fmt.Errorf("the account key in %s is not a base64 storage account key", from)
	}
	return sharedKey{cred: cred, from: from}, nil
}

func (k sharedKey) client(u string, o *container.ClientOptions) (*container.Client, error) {
	return container.NewClientWithSharedKeyCredential(u, k.cred, o)
}

// copySource signs a read-only SAS for the source, valid an hour: Copy Blob
// From URL does not take the account key's signature for its source.
func (k sharedKey) copySource(_ context.Context, src *blockblob.Client) (string, *string, error) {
	start := time.Now().Add(-15 * time.Minute) // the service's clock may be behind
	u, err := src.BlobClient().GetSASURL(sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour), &blob.GetSASURLOptions{StartTime: &start})
	if err != nil {
		return "", nil, fmt.Errorf("signing the copy's source: %w", err)
	}
	return u, nil, nil
}

func (k sharedKey) denied(account, _ string) string {
	return fmt.Sprintf("the account key in %s was refused: give the key of the storage account %s (az storage account keys list --account-name %s)", k.from, account, account)
}

func (k sharedKey) String() string { return "account key from " + k.from }

// sasToken signs by a SAS token appended to every URL.
type sasToken struct {
	token string
	from  string
}

func (t sasToken) client(u string, o *container.ClientOptions) (*container.Client, error) {
	return container.NewClientWithNoCredential(u+"?"+t.token, o)
}

func (t sasToken) copySource(_ context.Context, src *blockblob.Client) (string, *string, error) {
	return src.URL(), nil, nil
}

func (t sasToken) denied(account, container string) string {
	return fmt.Sprintf("the SAS token in %s was refused: it may have expired, or lack a permission; the lake needs read, add, create, write, delete and list on %s/%s", t.from, account, container)
}

func (t sasToken) String() string { return "SAS token from " + t.from }

// entra signs with Entra ID tokens for Azure Storage.
type entra struct {
	cred   azcore.TokenCredential
	method string
}

const storageScope = "https://storage.azure.com/.default"

func (e entra) client(u string, o *container.ClientOptions) (*container.Client, error) {
	return container.NewClient(u, e.cred, o)
}

// copySource passes a token for the source: Copy Blob From URL authorizes
// its source apart from the request.
func (e entra) copySource(ctx context.Context, src *blockblob.Client) (string, *string, error) {
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storageScope}})
	if err != nil {
		return "", nil, fmt.Errorf("signing in with %s: %w", e.method, err)
	}
	return src.URL(), to("Bearer " + tok.Token), nil
}

func (e entra) denied(account, container string) string {
	return fmt.Sprintf("the identity (%s) lacks access: assign it the role Storage Blob Data Contributor on %s/%s (az role assignment create --role \"Storage Blob Data Contributor\" --assignee <its object id> --scope <the storage account's id>/blobServices/default/containers/%s); a new assignment takes a few minutes", e.method, account, container, container)
}

func (e entra) String() string { return e.method }
