package azure

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/storetest"
	"github.com/lakelink/lakelink/internal/tools/azuritetest"
	"github.com/lakelink/lakelink/internal/tools/faultproxy"
)

// openAzurite opens a prefix of a fresh container on a fresh Azurite.
func openAzurite(t *testing.T) (*Store, *azuritetest.Server, string) {
	t.Helper()
	srv := azuritetest.Start(t)
	c := srv.Container(t)
	st, err := store.Open(t.Context(), srv.URL(c, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return st.(*Store), srv, c
}

// TestContract runs the store contract against Azurite, each test in a
// fresh prefix of one container.
func TestContract(t *testing.T) {
	srv := azuritetest.Start(t)
	c := srv.Container(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := store.Open(t.Context(), srv.URL(c, fmt.Sprintf("contract/%d", n.Add(1))))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		want    string // root|account|container|prefix|service
		wantErr string
	}{
		{"abfss://lake@acct01.dfs.core.windows.net/dataverse/prod", "abfss://lake@acct01.dfs.core.windows.net/dataverse/prod|acct01|lake|dataverse/prod|https://acct01.blob.core.windows.net", ""},
		{"abfss://lake@acct01.dfs.core.windows.net", "abfss://lake@acct01.dfs.core.windows.net|acct01|lake||https://acct01.blob.core.windows.net", ""},
		{"abfss://lake@Acct01.dfs.core.chinacloudapi.cn/p/", "abfss://lake@acct01.dfs.core.chinacloudapi.cn/p|acct01|lake|p|https://acct01.blob.core.chinacloudapi.cn", ""},
		{"https://acct01.blob.core.windows.net/lake/dataverse", "https://acct01.blob.core.windows.net/lake/dataverse|acct01|lake|dataverse|https://acct01.blob.core.windows.net", ""},
		{"https://acct01.blob.core.windows.net/lake", "https://acct01.blob.core.windows.net/lake|acct01|lake||https://acct01.blob.core.windows.net", ""},
		{"abfss://acct01.dfs.core.windows.net/p", "", "abfss://CONTAINER@ACCOUNT.dfs.core.windows.net"},
		{"abfss://lake@acct01.blob.core.windows.net/p", "", "abfss://CONTAINER@ACCOUNT.dfs.core.windows.net"},
		{"https://example.com/lake", "", "names Azure Blob Storage"},
		{"https://acct01.blob.core.windows.net/", "", "not a container name"},
		{"https://acct01.blob.core.windows.net/Lake_1/p", "", `"Lake_1" is not a container name`},
		{"abfss://lake@a.dfs.core.windows.net/p", "", `"a" is not a storage account name`},
		{"abfss://lake@acct01.dfs.core.windows.net:10000/p", "", "belongs in lake.endpoint"},
		{"abfss://lake:s3cr3t@acct01.dfs.core.windows.net/p", "", "holds no password"},
		{"abfss://lake@acct01.dfs.core.windows.net/a//b", "", "not a clean slash path"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parse(u)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("parse(%s) = %v, want an error saying %q", tt.url, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%s): %v", tt.url, err)
			continue
		}
		if s := strings.Join([]string{got.root, got.account, got.container, got.prefix, got.service}, "|"); s != tt.want {
			t.Errorf("parse(%s) = %s, want %s", tt.url, s, tt.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct{ query, wantErr string }{
		{"endpoint=http://127.0.0.1:10000/devstoreaccount1&account_key_env=K", ""},
		{"tenant_id=t&client_id=c&client_secret_file=/etc/s", ""},
		{"managed_identity=true&client_id=c", ""},
		{"sas_token_file=/etc/sas", ""},
		{"region=eu-west-1", `"region" is not one of the Azure store's`},
		{"endpoint=ftp://x", "is not an http(s) URL"},
		{"managed_identity=yes", "not true or false"},
		{"account_key_env=K&sas_token_env=S", "name one credential"},
		{"account_key_env=K&account_key_file=/k", "not both"},
		{"endpoint=http://a&endpoint=http://b", "given 2 times"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		_, err := parseQuery(q)
		if (err != nil) != (tt.wantErr != "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseQuery(%s) = %v, want %q", tt.query, err, tt.wantErr)
		}
	}
}

// TestLargeObject writes objects of several blocks: nothing is listed or
// readable until Close, the object reads back whole, and an aborted large
// write leaves nothing.
func TestLargeObject(t *testing.T) {
	ctx := t.Context()
	st, _, _ := openAzurite(t)
	data := make([]byte, 2*blockSize+12345)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	w, err := st.Create(ctx, "big/2024.csv")
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes, as a CSV encoder's are.
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 100_003)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if objs, err := st.List(ctx, "big/"); err != nil || len(objs) != 0 {
		t.Fatalf("List before Close: %v %v", objs, err)
	}
	if len(w.(*writer).ids) < 2 {
		t.Fatalf("the write staged %d blocks, want 2 or more", len(w.(*writer).ids))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadAll(ctx, st, "big/2024.csv")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	objs, err := st.List(ctx, "big/")
	if err != nil || len(objs) != 1 || objs[0].Size != int64(len(data)) {
		t.Fatalf("List after Close: %+v %v", objs, err)
	}
	a, err := st.Create(ctx, "big/aborted.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	if objs, err := st.List(ctx, "big/"); err != nil || storetest.Names(objs) != "big/2024.csv" {
		t.Fatalf("List after Abort: %s %v", storetest.Names(objs), err)
	}
}

// TestCopyAsync copies through Copy Blob, the path of sources above the
// 256 MiB of Copy Blob From URL (lowered here).
func TestCopyAsync(t *testing.T) {
	ctx := t.Context()
	st, _, _ := openAzurite(t)
	st.copyFromURLMax = 3
	if err := store.Put(ctx, st, "a/2024.csv", []byte("rows")); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy(ctx, "a/2024.csv", "a/Snapshot/2024_1.csv"); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ReadAll(ctx, st, "a/Snapshot/2024_1.csv"); err != nil || string(got) != "rows" {
		t.Fatalf("the copy holds %q (%v)", got, err)
	}
	if err := st.Copy(ctx, "a/absent.csv", "a/x.csv"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Copy of an absent object: %v", err)
	}
}

// sasFor signs a SAS token for container c with perms.
func sasFor(t *testing.T, c string, perms sas.ContainerPermissions) string {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ContainerName: c, Permissions: perms.String(),
		StartTime: time.Now().Add(-time.Hour), ExpiryTime: time.Now().Add(time.Hour),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// TestSASToken runs Copy's contract (whose source a SAS URL authorizes) on
// a store signed by a SAS token, and shows a token without write permission
// refused with what it lacks.
func TestSASToken(t *testing.T) {
	srv := azuritetest.Start(t)
	c := srv.Container(t)
	dir := t.TempDir()
	full := sasFor(t, c, sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true})
	if err := os.WriteFile(filepath.Join(dir, "full"), []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := sasFor(t, c, sas.ContainerPermissions{Read: true, List: true})
	t.Setenv("LAKELINK_TEST_SAS", readOnly)
	lakeURL := func(prefix string, q url.Values) string {
		q.Set("endpoint", srv.Endpoint)
		return azuritetest.LakeURL(c, prefix) + "?" + q.Encode()
	}
	var n atomic.Int32
	storetest.RunCopy(t, func(t *testing.T) store.Store {
		st, err := store.Open(t.Context(), lakeURL(fmt.Sprint("copy/", n.Add(1)), url.Values{"sas_token_file": {filepath.Join(dir, "full")}}))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
	st, err := store.Open(t.Context(), lakeURL("ro", url.Values{"sas_token_env": {"LAKELINK_TEST_SAS"}}))
	if err != nil {
		t.Fatal(err)
	}
	err = store.Put(t.Context(), st, "model.json", []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "SAS token in the variable LAKELINK_TEST_SAS was refused") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("write with a read-only SAS: %v", err)
	}
	sig, _ := url.ParseQuery(readOnly)
	if strings.Contains(err.Error(), sig.Get("sig")) {
		t.Fatalf("the error shows the SAS signature: %v", err)
	}
}

// TestOpenErrors: what Open says of a missing container, a wrong key, a
// key of another account and an unreachable service, without the key.
func TestOpenErrors(t *testing.T) {
	srv := azuritetest.Start(t)
	c := srv.Container(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	// A well-formed key that is not the account's.
	if err := os.WriteFile(wrong, []byte("c2VjcmV0LWJ1dC13cm9uZy1rZXktMDEyMzQ1Njc4OQ=="), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not*base64"), 0o600); err != nil {
		t.Fatal(err)
	}
	lakeURL := func(c, endpoint string, q url.Values) string {
		q.Set("endpoint", endpoint)
		return azuritetest.LakeURL(c, "lake") + "?" + q.Encode()
	}
	key := url.Values{"account_key_file": {srv.KeyFile}}
	tests := []struct {
		name, url string
		env       map[string]string
		want      []string
	}{
		{"missing container", lakeURL("absent-container", srv.Endpoint, key), nil,
			[]string{`lake abfss://absent-container@devstoreaccount1.dfs.core.windows.net/lake: open the container`, `the container "absent-container" does not exist in the storage account devstoreaccount1`, "az storage container create"}},
		{"wrong key", lakeURL(c, srv.Endpoint, url.Values{"account_key_file": {wrong}}), nil,
			[]string{"403", "the account key in the file " + wrong + " was refused", "az storage account keys list"}},
		{"garbage key", lakeURL(c, srv.Endpoint, url.Values{"account_key_file": {garbage}}), nil,
			[]string{"is not a base64 storage account key"}},
		{"key of another account", lakeURL(c, srv.Endpoint, url.Values{}), map[string]string{envKey: azuritetest.Key, envAccount: "otheraccount"},
			[]string{"AZURE_STORAGE_KEY holds the key of the account AZURE_STORAGE_ACCOUNT=otheraccount"}},
		{"unset key variable", lakeURL(c, srv.Endpoint, url.Values{"account_key_env": {"LAKELINK_TEST_UNSET_KEY"}}), nil,
			[]string{"account key variable LAKELINK_TEST_UNSET_KEY is empty or unset"}},
		{"nothing listens", lakeURL(c, "http://127.0.0.1:1/devstoreaccount1", key), nil,
			[]string{"cannot reach the Blob service of devstoreaccount1", "connection refused"}},
	}
	shortRetries(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := store.Open(t.Context(), tt.url)
			if err == nil {
				t.Fatal("opened")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), azuritetest.Key) || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

// TestClockSkew: a refusal answered with a Date far from this machine's
// clock names the clock.
func TestClockSkew(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "https://acct01.blob.core.windows.net/lake/x", nil)
	resp := &http.Response{
		StatusCode: http.StatusForbidden, Request: req, Body: io.NopCloser(strings.NewReader("")),
		Header: http.Header{"Date": {time.Now().Add(-40 * time.Minute).UTC().Format(http.TimeFormat)}, "X-Ms-Error-Code": {"AuthenticationFailed"}},
	}
	s := &Store{root: "abfss://lake@acct01.dfs.core.windows.net", account: "acct01", container: "lake", cred: sasToken{from: "the variable X"}}
	err := s.fail("write", "x", runtime.NewResponseError(resp))
	if !strings.Contains(err.Error(), "this machine's clock is 40m0s off the service's") {
		t.Fatalf("error: %v", err)
	}
}

// shortRetries shortens the backoff between retries for t: the tests show
// that faults are retried, not how long the backoff waits.
func shortRetries(t *testing.T) {
	saved := retry
	retry.RetryDelay, retry.MaxRetryDelay = 10*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { retry = saved })
}

// TestFaults runs writes, reads, copies and lists through a proxy that
// drops connections before and after the service handles a request,
// answers 503 and cuts answers short: every operation succeeds, and no
// PutIfAbsent whose answer was lost is taken for a lost race.
func TestFaults(t *testing.T) {
	ctx := t.Context()
	shortRetries(t)
	srv := azuritetest.Start(t)
	c := srv.Container(t)
	proxy := faultproxy.Start(t, srv.Endpoint)
	q := url.Values{"endpoint": {proxy.URL}, "account_key_file": {srv.KeyFile}}
	st, err := store.Open(ctx, azuritetest.LakeURL(c, "lake")+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	proxy.Set(faultproxy.Faults{DropBefore: 0.1, DropAfter: 0.15, Unavailable: 0.1, Truncate: 0.1})
	const n = 30
	for i := range n {
		name := fmt.Sprintf("_log/%020d.json", i)
		if err := st.PutIfAbsent(ctx, name, []byte(fmt.Sprintf(`{"commit":%d}`, i))); err != nil {
			t.Fatalf("PutIfAbsent(%s): %v", name, err)
		}
		if err := st.PutIfAbsent(ctx, name, []byte("another writer")); !errors.Is(err, store.ErrExist) {
			t.Fatalf("PutIfAbsent(%s) again: %v, want ErrExist", name, err)
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (blockSize+blockSize/2)/16)
	if err := store.Put(ctx, st, "t/2024.csv", big); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy(ctx, "t/2024.csv", "t/Snapshot/2024.csv"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t/2024.csv", "t/Snapshot/2024.csv"} {
		got, err := store.ReadAll(ctx, st, name)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s: read %d bytes (%v), want %d", name, len(got), err, len(big))
		}
	}
	objs, err := st.List(ctx, "")
	if err != nil || len(objs) != n+2 {
		t.Fatalf("List: %d objects (%v), want %d", len(objs), err, n+2)
	}
	if err := st.Delete(ctx, "t/2024.csv"); err != nil {
		t.Fatal(err)
	}
	// The one answer that matters most, lost: the commit's PutIfAbsent
	// is applied and its answer never arrives.
	var once atomic.Bool
	proxy.Set(faultproxy.Faults{DropAfter: 1, Only: func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/lost.json") && once.CompareAndSwap(false, true)
	}})
	before := proxy.Counts().DroppedAfter
	if err := st.PutIfAbsent(ctx, "_log/lost.json", []byte("mine")); err != nil {
		t.Fatalf("PutIfAbsent whose answer was lost: %v, want it won", err)
	}
	if proxy.Counts().DroppedAfter != before+1 {
		t.Fatal("the proxy did not drop the answer")
	}
	cnt := proxy.Counts()
	t.Logf("faults: %+v", cnt)
	if cnt.DroppedAfter == 0 || cnt.DroppedBefore == 0 || cnt.Unavailable == 0 || cnt.Truncated == 0 {
		t.Fatalf("the proxy injected not every fault: %+v", cnt)
	}
}
