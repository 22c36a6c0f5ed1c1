// Package azure is the store.Store of a lake in Azure Blob Storage or Azure
// Data Lake Storage Gen2 (a storage account with a hierarchical namespace).
// It registers the URL schemes "abfss" (abfss://container@account.dfs.core.windows.net/prefix)
// and "https" (https://account.blob.core.windows.net/container/prefix) with
// package store, and speaks the Blob API to both: it works on accounts with a
// hierarchical namespace too, and the Azure emulator Azurite has no working
// dfs endpoint.
//
// How each operation keeps the store.Store contract:
//   - Create buffers up to one block: a small object is one Put Blob; a
//     larger one is staged as blocks (Put Block) while it is written, two
//     blocks in memory at most, and published by one Put Block List. Both
//     replace a blob atomically; staged blocks are never listed.
//   - PutIfAbsent is a Put Blob with If-None-Match: *; the service answers a
//     taken name with 409 BlobAlreadyExists (412 in a race), which is
//     store.ErrExist.
//   - Copy is a synchronous Copy Blob From URL, server-side (Copy Blob, polled
//     to its end, above the 256 MiB that one takes).
//   - List reads every page of a flat listing, 1000 names a page.
//
// Settings come in the URL's query (config folds the profile's lake keys
// into it): endpoint overrides the service endpoint (Azurite, sovereign
// clouds), and the credential keys of Query below. Every request is retried
// with exponential backoff and jitter on 408/429/500/502/503/504 and
// dropped connections, each try with a timeout.
package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lakelink/lakelink/internal/store"
)

func init() {
	store.Register("abfss", open)
	store.Register("https", open)
}

// retry is the retry and timeout policy of every request. Its budget
// (about a minute of backoff) covers a service hiccup; a longer outage
// fails the operation, and the link retries the table later (package
// engine). Tests shorten it.
var retry = policy.RetryOptions{
	MaxRetries:    10,
	RetryDelay:    200 * time.Millisecond,
	MaxRetryDelay: 10 * time.Second,
	// TryTimeout bounds one try of a request, the body of a download
	// included: Open's reader resumes a download cut by it where it
	// stopped.
	TryTimeout: tryTimeout,
}

const tryTimeout = 2 * time.Minute

// pageSize is how many names one List request returns.
const pageSize = 1000

// Store is a store.Store under a prefix of one container.
type Store struct {
	root      string // Location(""): the URL as given, without its query
	account   string
	container string
	prefix    string // "" or the blob-name prefix ending in "/"
	cc        *container.Client
	cred      credential
	// copyFromURLMax is the largest source Copy copies with Copy Blob From
	// URL, which the service caps at 256 MiB; tests lower it.
	copyFromURLMax int64
}

// open is the store.Opener of the abfss and https schemes.
func open(ctx context.Context, u *url.URL) (store.Store, error) {
	s, err := New(ctx, u)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var (
	accountName   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
)

// target is what a lake URL names.
type target struct {
	root, account, container, prefix string
	// service is the Blob service endpoint, such as
	// https://account.blob.core.windows.net.
	service string
}

// parse reads an abfss or https lake URL; the query is the caller's.
func parse(u *url.URL) (target, error) {
	host := strings.ToLower(u.Hostname())
	shown := (&url.URL{Scheme: u.Scheme, User: u.User, Host: strings.ToLower(u.Host), Path: u.Path}).Redacted()
	bad := func(format string, args ...any) (target, error) {
		return target{}, fmt.Errorf("lake %s: %s", shown, fmt.Sprintf(format, args...))
	}
	if u.Fragment != "" || u.Opaque != "" {
		return bad("an Azure lake URL has no fragment")
	}
	if _, set := u.User.Password(); set {
		return bad("an Azure lake URL holds no password: give the account key in AZURE_STORAGE_KEY or lake.auth.account_key_env")
	}
	account, suffix, _ := strings.Cut(host, ".")
	var t target
	path := strings.Trim(u.Path, "/")
	switch u.Scheme {
	case "abfss":
		service, ok := strings.CutPrefix(suffix, "dfs.")
		if !ok || u.User == nil {
			return bad("write an ADLS Gen2 lake as abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX")
		}
		t.container = u.User.Username()
		t.prefix = path
		t.service = "https://" + account + ".blob." + service
	case "https":
		service, ok := strings.CutPrefix(suffix, "blob.")
		if !ok || u.User != nil {
			return bad("an https lake URL names Azure Blob Storage: https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX (or abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX)")
		}
		t.container, t.prefix, _ = strings.Cut(path, "/")
		t.service = "https://" + account + ".blob." + service
	default:
		return bad("the Azure store opens abfss:// and https:// URLs, not %s://", u.Scheme)
	}
	if u.Port() != "" {
		return bad("the service's port belongs in lake.endpoint (the endpoint setting), e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite")
	}
	t.account = account
	if !accountName.MatchString(account) {
		return bad("%q is not a storage account name (3 to 24 lower-case letters and digits)", account)
	}
	if !containerName.MatchString(t.container) {
		return bad("%q is not a container name (3 to 63 lower-case letters, digits and single hyphens, starting with a letter or digit)", t.container)
	}
	if t.prefix != "" && !fs.ValidPath(t.prefix) {
		return bad("the prefix %q is not a clean slash path", t.prefix)
	}
	t.root = strings.TrimRight(shown, "/")
	return t, nil
}

// New opens the lake at u (an abfss or https URL with its settings in the
// query) and checks that its container answers, so that a wrong account,
// container or credential shows at once with what to do.
func New(ctx context.Context, u *url.URL) (*Store, error) {
	t, err := parse(u)
	if err != nil {
		return nil, err
	}
	q, err := parseQuery(u.Query())
	if err != nil {
		return nil, fmt.Errorf("lake %s: %w", t.root, err)
	}
	if q.endpoint != "" {
		t.service = strings.TrimRight(q.endpoint, "/")
	}
	s := &Store{root: t.root, account: t.account, container: t.container, copyFromURLMax: 256 << 20}
	if t.prefix != "" {
		s.prefix = t.prefix + "/"
	}
	hc := &http.Client{Transport: transport()}
	opts := azcore.ClientOptions{
		Transport:        hc,
		Retry:            retry,
		PerRetryPolicies: []policy.Policy{countTries{}},
	}
	if s.cred, err = credentialFor(q, t.account, opts); err != nil {
		return nil, fmt.Errorf("lake %s: %w", t.root, err)
	}
	if s.cc, err = s.cred.client(t.service+"/"+t.container, &container.ClientOptions{ClientOptions: opts}); err != nil {
		return nil, fmt.Errorf("lake %s: %w", t.root, err)
	}
	// A listing of one name, not Get Container Properties: a SAS token of
	// the container may not read the container's properties.
	probe := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &s.prefix, MaxResults: to(int32(1))})
	if _, err := probe.NextPage(ctx); err != nil {
		return nil, s.fail("open the container", "", err)
	}
	return s, nil
}

// transport keeps enough idle connections for the concurrent requests of
// many tables' writers: the default 2 per host would open a connection (a
// TLS handshake) for most requests.
func transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.ResponseHeaderTimeout = tryTimeout
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return tr
}

// triesKey holds, in a request's context, the *atomic.Int32 countTries
// counts the request's tries in.
type triesKey struct{}

// countTries counts the tries of the requests whose context asks for it
// (withTries): a PutIfAbsent answered "exists" after a retry may have been
// won by its own earlier try.
type countTries struct{}

func (countTries) Do(req *policy.Request) (*http.Response, error) {
	if n, ok := req.Raw().Context().Value(triesKey{}).(*atomic.Int32); ok {
		n.Add(1)
	}
	return req.Next()
}

func withTries(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, triesKey{}, n), n
}

// check rejects names that are not clean relative slash paths, as the
// contract asks of every store.
func check(name string) error {
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("object name %q: must be a relative slash-separated path without \".\" or \"..\" elements", name)
	}
	return nil
}

func (s *Store) blob(name string) *blockblob.Client { return s.cc.NewBlockBlobClient(s.prefix + name) }

// Location returns the object's URL in the form the lake URL was given in.
func (s *Store) Location(name string) string {
	if name == "" {
		return s.root
	}
	return s.root + "/" + name
}

// Create starts writing the object name; see writer.
func (s *Store) Create(ctx context.Context, name string) (store.Writer, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	return &writer{s: s, ctx: ctx, name: name, bb: s.blob(name)}, nil
}

// PutIfAbsent writes name only if no blob has that name (If-None-Match: *).
// A try whose answer is lost on the way back (a dropped connection) is
// retried, and the retry then finds the name taken by the earlier try
// itself: an "exists" after more than one try counts as a win when the blob
// holds exactly data. Writers that race for a name write different bytes
// (the commit protocol names the writer in each commit), so no loser takes
// that for a win.
func (s *Store) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := check(name); err != nil {
		return err
	}
	tctx, tries := withTries(ctx)
	_, err := s.blob(name).UploadBuffer(tctx, data, &blockblob.UploadBufferOptions{
		BlockSize:   blockSize,
		Concurrency: 1,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: to(azcore.ETagAny),
		}},
	})
	if err == nil {
		return nil
	}
	if code := errorCode(err); code == "BlobAlreadyExists" || code == "ConditionNotMet" || code == "UnauthorizedBlobOverwrite" {
		if tries.Load() > 1 {
			if got, rerr := store.ReadAll(ctx, s, name); rerr == nil && string(got) == string(data) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w", s.Location(name), store.ErrExist)
	}
	return s.fail("write", name, err)
}

func to[T any](v T) *T { return &v }

// Copy copies from to to server-side.
func (s *Store) Copy(ctx context.Context, from, to string) error {
	if err := check(from); err != nil {
		return err
	}
	if err := check(to); err != nil {
		return err
	}
	src := s.blob(from)
	props, err := src.GetProperties(ctx, nil)
	if err != nil {
		return s.fail("copy", from, err)
	}
	if folder(props.Metadata) {
		return fmt.Errorf("%s: %w", s.Location(from), store.ErrNotExist)
	}
	if from == to {
		return nil
	}
	source, auth, err := s.cred.copySource(ctx, src)
	if err != nil {
		return fmt.Errorf("lake %s: copying %s to %s: %w", s.root, from, to, err)
	}
	dst := s.blob(to)
	if props.ContentLength != nil && *props.ContentLength <= s.copyFromURLMax {
		if _, err := dst.CopyFromURL(ctx, source, &blob.CopyFromURLOptions{CopySourceAuthorization: auth}); err != nil {
			return s.fail("copy "+from+" to", to, err)
		}
		return nil
	}
	return s.copyAsync(ctx, from, to, source, dst)
}

// copyAsync copies with Copy Blob, which has no size limit and which the
// service may finish later: it waits for the copy's end. Within one
// account the service copies at once in practice.
func (s *Store) copyAsync(ctx context.Context, from, to, source string, dst *blockblob.Client) error {
	resp, err := dst.StartCopyFromURL(ctx, source, nil)
	if err != nil {
		return s.fail("copy "+from+" to", to, err)
	}
	status, id := resp.CopyStatus, resp.CopyID
	for wait := 100 * time.Millisecond; status != nil && *status == blob.CopyStatusTypePending; wait = min(2*wait, 5*time.Second) {
		select {
		case <-ctx.Done():
			if id != nil {
				_, _ = dst.AbortCopyFromURL(context.WithoutCancel(ctx), *id, nil)
			}
			return ctx.Err()
		case <-time.After(wait):
		}
		props, err := dst.GetProperties(ctx, nil)
		if err != nil {
			return s.fail("copy "+from+" to", to, err)
		}
		status = props.CopyStatus
	}
	if status != nil && *status != blob.CopyStatusTypeSuccess {
		return fmt.Errorf("lake %s: copying %s to %s: the service ended the copy with status %s", s.root, from, to, *status)
	}
	return nil
}

// Open reads the object name. The reader resumes a download cut short
// (a dropped connection, a try's timeout) from where it stopped, and only
// from the same version of the blob (If-Match its ETag): a blob replaced
// meanwhile fails the read rather than mix two versions.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := check(name); err != nil {
		return nil, err
	}
	resp, err := s.blob(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, s.fail("read", name, err)
	}
	if folder(resp.Metadata) {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %w", s.Location(name), store.ErrNotExist)
	}
	return &reader{s: s, name: name, r: resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: retry.MaxRetries})}, nil
}

// folder reports whether a blob's metadata mark it as a directory of a
// hierarchical namespace, which the Blob API lists as an empty blob: no
// object of the lake.
func folder(md map[string]*string) bool {
	for k, v := range md {
		if strings.EqualFold(k, "hdi_isfolder") && v != nil && strings.EqualFold(*v, "true") {
			return true
		}
	}
	return false
}

// List lists the objects under prefix, every page.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Object, error) {
	full := s.prefix + prefix
	pager := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     &full,
		MaxResults: to(int32(pageSize)),
		Include:    container.ListBlobsInclude{Metadata: true},
	})
	var out []store.Object
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", prefix+"*", err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || (b.Metadata != nil && folder(b.Metadata)) {
				continue
			}
			name := strings.TrimPrefix(*b.Name, s.prefix)
			o := store.Object{Name: name}
			if p := b.Properties; p != nil {
				if p.ContentLength != nil {
					o.Size = *p.ContentLength
				}
				if p.LastModified != nil {
					o.ModTime = *p.LastModified
				}
			}
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b store.Object) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete deletes the object name, with any snapshots of it.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := check(name); err != nil {
		return err
	}
	_, err := s.blob(name).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to(blob.DeleteSnapshotsOptionTypeInclude)})
	if err == nil || errors.Is(s.fail("", name, err), store.ErrNotExist) {
		return nil
	}
	return s.fail("delete", name, err)
}
