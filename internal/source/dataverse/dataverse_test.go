package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/lakelink/lakelink/internal/azauth"
	"github.com/lakelink/lakelink/internal/source"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// events records Throttled/Unreachable/Unthrottled calls.
type events struct {
	mu          sync.Mutex
	throttled   map[string]int
	unreachable map[string]int
	unthrottled map[string]int
}

func (e *events) Throttled(table, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.throttled == nil {
		e.throttled = map[string]int{}
	}
	e.throttled[table]++
}

func (e *events) Unreachable(table, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unreachable == nil {
		e.unreachable = map[string]int{}
	}
	e.unreachable[table]++
}

func (e *events) Unthrottled(table string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unthrottled == nil {
		e.unthrottled = map[string]int{}
	}
	e.unthrottled[table]++
}

// open connects to url with test-sized retries and intervals.
func open(t testing.TB, url string, mod func(*Config)) *Source {
	t.Helper()
	cfg := Config{URL: url, PageSize: 3, PollInterval: 10 * time.Millisecond, MaxPollInterval: 40 * time.Millisecond, RequestsPerSecond: 1000}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.c.backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) }
	t.Cleanup(func() { s.Close() })
	return s
}

// copyAll runs Copy and returns its batches.
func copyAll(t *testing.T, s *Source, table, resume string) []source.Batch {
	t.Helper()
	var out []source.Batch
	err := s.Copy(context.Background(), table, resume, func(_ context.Context, b source.Batch) error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		t.Fatalf("Copy %s: %v", table, err)
	}
	return out
}

// streamUntil runs Stream from cursors until stop says so (or 10 s pass)
// and returns the batches and the last cursors.
func streamUntil(t *testing.T, s *Source, cursors map[string]string, stop func([]source.Batch) bool) ([]source.Batch, map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []source.Batch
	last := map[string]string{}
	for k, v := range cursors {
		last[k] = v
	}
	err := s.Stream(ctx, cursors, func(_ context.Context, b source.Batch) error {
		out = append(out, b)
		for k, v := range b.Cursors {
			last[k] = v
		}
		if stop(out) {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream ended with %v after %d batches", err, len(out))
	}
	return out, last
}

// value returns c's value of column name, nil when it has none.
func value(c source.Change, name string) any {
	if i := slices.Index(c.Columns, name); i >= 0 {
		return c.Values[i]
	}
	return nil
}

// nonNull returns c's non-NULL values by column.
func nonNull(c source.Change) map[string]any {
	m := map[string]any{}
	for i, v := range c.Values {
		if v != nil {
			m[c.Columns[i]] = v
		}
	}
	return m
}

func changes(bs []source.Batch) []source.Change {
	var out []source.Change
	for _, b := range bs {
		out = append(out, b.Changes...)
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestTables(t *testing.T) {
	_, srv := newFake(t)
	s := open(t, srv.URL, nil)
	got, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []source.TableInfo{{Name: "account", Tracked: true}, {Name: "accountleads", Tracked: true}, {Name: "competitor", Tracked: false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Tables = %v, want %v", got, want)
	}
}

// TestDescribe checks the description of each table (golden) and the
// requests it took: the definition with its attributes, then one cast for
// the enum attributes (Picklist, State, Status) and one for the Boolean
// ones, each only when the table has such attributes (issue #16).
func TestDescribe(t *testing.T) {
	f, srv := newFake(t)
	s := open(t, srv.URL, nil)
	for _, tc := range []struct {
		table    string
		requests int
		casts    string
	}{
		{"account", 3, "EnumAttributeMetadata BooleanAttributeMetadata"},
		{"accountleads", 1, ""},
	} {
		t.Run(tc.table, func(t *testing.T) {
			f.mu.Lock()
			before := f.requests
			f.casts = nil
			f.mu.Unlock()
			got, err := s.Describe(context.Background(), tc.table)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.MarshalIndent(got, "", "  ")
			golden(t, tc.table+".describe.golden.json", append(b, '\n'))
			f.mu.Lock()
			defer f.mu.Unlock()
			if n := f.requests - before; n != tc.requests || strings.Join(f.casts, " ") != tc.casts {
				t.Errorf("Describe(%s): %d requests, casts %q; want %d, %q", tc.table, n, f.casts, tc.requests, tc.casts)
			}
		})
	}
}

func TestDescribeNotTracked(t *testing.T) {
	_, srv := newFake(t)
	s := open(t, srv.URL, nil)
	_, err := s.Describe(context.Background(), "competitor")
	var nt *source.NotTrackedError
	if !errors.As(err, &nt) || nt.Table != "competitor" || !strings.Contains(nt.Fix, "Track changes") {
		t.Fatalf("Describe(competitor) = %v, want a NotTrackedError naming competitor with a fix", err)
	}
	if err := s.Copy(context.Background(), "competitor", "", nil); !errors.As(err, &nt) {
		t.Errorf("Copy(competitor) = %v, want a NotTrackedError", err)
	}
}

func TestDescribeErrors(t *testing.T) {
	_, srv := newFake(t)
	s := open(t, srv.URL, nil)
	for _, tc := range []struct{ table, want string }{
		{"nosuchtable", "HTTP 404"},
		{"Account'); DROP", "not a table logical name"},
	} {
		_, err := s.Describe(context.Background(), tc.table)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Describe(%q) = %v, want an error with %q", tc.table, err, tc.want)
		}
	}
}

func TestCopyPages(t *testing.T) {
	f, srv := newFake(t)
	for i := range 8 {
		f.upsert(i, fmt.Sprintf("Account %d", i))
	}
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	if len(bs) != 3 {
		t.Fatalf("got %d batches, want 3 pages of 3, 3, 2", len(bs))
	}
	for i, b := range bs {
		if b.Done != (i == 2) {
			t.Errorf("batch %d: Done = %v", i, b.Done)
		}
		if _, err := parseCursor("account", b.Cursors["account"]); err != nil {
			t.Errorf("batch %d: cursor: %v", i, err)
		}
	}
	cs := changes(bs)
	if len(cs) != 8 {
		t.Fatalf("got %d changes, want 8", len(cs))
	}
	c := cs[3]
	want := map[string]any{
		"accountid":         fakeID(3),
		"name":              "Account 3",
		"revenue":           "3000.50",
		"numberofemployees": int64(3),
		"address1_latitude": 47.6062,
		"donotemail":        false,
		"description":       "line one\nline \"two\", with comma",
		"industrycode":      int64(1),
		"ownerid":           "1e5b6f7a-0000-4000-8000-000000000001",
		"owneridtype":       "systemuser",
		"exchangerate":      "1.0000000000",
		"statecode":         int64(0),
		"statuscode":        int64(1),
		"versionnumber":     int64(4),
		"createdon":         time.Date(2023, 3, 1, 10, 0, 0, 0, time.UTC),
		"modifiedon":        time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if c.ID != fakeID(3) || c.Version != 4 || c.Deleted || c.Table != "account" {
		t.Errorf("change = %+v", c)
	}
	if got := nonNull(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("values\n got %v\nwant %v", got, want)
	}
	// The changes of one $select set share one Columns slice.
	for _, c := range cs {
		if &c.Columns[0] != &cs[0].Columns[0] || len(c.Columns) != len(cs[0].Columns) {
			t.Fatalf("change %s: Columns not shared with the other changes'", c.ID)
		}
	}
	if p := f.prefers[0]; !strings.Contains(p, "odata.track-changes") || !strings.Contains(p, "odata.maxpagesize=3") {
		t.Errorf("Prefer = %q", p)
	}

	// Resuming after the first page reads the other two.
	rest := copyAll(t, s, "account", bs[0].Cursors["account"])
	if len(changes(rest)) != 5 || !rest[len(rest)-1].Done {
		t.Errorf("resume read %d changes in %d batches, want 5 ending Done", len(changes(rest)), len(rest))
	}
	if err := s.Copy(context.Background(), "account", bs[2].Cursors["account"], nil); err == nil {
		t.Error("Copy accepted a delta cursor")
	}
	if err := s.Stream(context.Background(), map[string]string{"account": bs[0].Cursors["account"]}, nil); err == nil || !strings.Contains(err.Error(), "unfinished Copy") {
		t.Errorf("Stream from a copy cursor = %v, want an error", err)
	}
}

func TestCopyEmptyTable(t *testing.T) {
	_, srv := newFake(t)
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	if len(bs) != 1 || !bs[0].Done || len(bs[0].Changes) != 0 {
		t.Fatalf("got %+v, want one empty Done batch", bs)
	}
}

func TestStreamChanges(t *testing.T) {
	f, srv := newFake(t)
	for i := range 4 {
		f.upsert(i, "first")
	}
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	cur := map[string]string{"account": bs[len(bs)-1].Cursors["account"]}

	// Idle: an empty batch reports the table caught up.
	got, cur := streamUntil(t, s, cur, func(b []source.Batch) bool { return len(b) >= 2 })
	if n := len(changes(got)); n != 0 {
		t.Fatalf("idle stream delivered %d changes", n)
	}

	f.upsert(1, "updated")
	f.upsert(9, "created")
	f.remove(2)
	f.upsert(3, "updated before delete")
	f.remove(3)
	got, cur = streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 4 })
	byID := map[string]source.Change{}
	for _, c := range changes(got) {
		if _, dup := byID[c.ID]; dup {
			t.Errorf("change of %s delivered twice", c.ID)
		}
		byID[c.ID] = c
	}
	if c := byID[fakeID(1)]; value(c, "name") != "updated" || c.Version != 5 {
		t.Errorf("update = %+v", c)
	}
	if c := byID[fakeID(9)]; value(c, "name") != "created" {
		t.Errorf("create = %+v", c)
	}
	del2, del3 := byID[fakeID(2)], byID[fakeID(3)]
	if !del2.Deleted || !del3.Deleted || del2.Values != nil {
		t.Fatalf("deletes = %+v %+v", del2, del3)
	}
	// A delete wins over every version of the row read before it.
	if del2.Version <= 2 || del3.Version <= 4 {
		t.Errorf("delete versions %d, %d do not follow the rows' earlier versions 2, 4", del2.Version, del3.Version)
	}

	// A later re-creation of a deleted id wins over the delete.
	f.upsert(100, "unrelated write")
	f.upsert(3, "re-created")
	got, _ = streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 2 })
	for _, c := range changes(got) {
		if c.ID == fakeID(3) && (c.Deleted || c.Version <= del3.Version) {
			t.Errorf("re-create %+v does not follow the delete's version %d", c, del3.Version)
		}
	}
}

// TestStreamRedelivery checks that reading a delta page again from the same
// cursor gives the same changes, delete versions included: the lake's
// idempotent apply by (ID, Version) relies on it.
func TestStreamRedelivery(t *testing.T) {
	f, srv := newFake(t)
	for i := range 3 {
		f.upsert(i, "x")
	}
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	cur := map[string]string{"account": bs[len(bs)-1].Cursors["account"]}
	f.remove(0)
	f.upsert(1, "y")
	first, _ := streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 2 })
	again, _ := streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 2 })
	if fmt.Sprint(changes(first)) != fmt.Sprint(changes(again)) {
		t.Errorf("redelivery differs:\n%v\n%v", changes(first), changes(again))
	}
}

func TestStreamPagesDeltaRead(t *testing.T) {
	f, srv := newFake(t)
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	cur := map[string]string{"account": bs[0].Cursors["account"]}
	for i := range 10 {
		f.upsert(i, "new")
	}
	got, _ := streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 10 })
	if len(got) < 4 {
		t.Errorf("10 changes came in %d batches, want one per page of 3", len(got))
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*fake)
		// throttled: the retries are reported as Throttled (429), else
		// as Unreachable.
		throttled bool
	}{
		{"throttled", func(f *fake) { f.throttle = 5 }, true},
		{"unavailable", func(f *fake) { f.unavailable = 5 }, false},
		{"cut mid-page", func(f *fake) { f.cut = 3 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t)
			for i := range 10 {
				f.upsert(i, "x")
			}
			ev := &events{}
			s := open(t, srv.URL, func(c *Config) { c.Events = ev })
			f.set(tc.set)
			bs := copyAll(t, s, "account", "")
			seen := map[string]bool{}
			for _, c := range changes(bs) {
				if seen[c.ID] {
					t.Errorf("%s duplicated", c.ID)
				}
				seen[c.ID] = true
			}
			if len(seen) != 10 {
				t.Errorf("got %d rows, want 10", len(seen))
			}
			reported, other := ev.unreachable["account"], ev.throttled["account"]
			if tc.throttled {
				reported, other = other, reported
			}
			if reported == 0 || other != 0 || ev.unthrottled["account"] != reported {
				t.Errorf("events: throttled %v, unreachable %v, unthrottled %v", ev.throttled, ev.unreachable, ev.unthrottled)
			}
		})
	}
}

func TestNonRetryable(t *testing.T) {
	f, srv := newFake(t)
	s := open(t, srv.URL, nil)
	f.set(func(f *fake) { f.forbid = true })
	start := time.Now()
	err := s.Copy(context.Background(), "account", "", func(context.Context, source.Batch) error { return nil })
	var h *HTTPError
	if !errors.As(err, &h) || h.Status != http.StatusForbidden || h.Table != "account" || !strings.Contains(err.Error(), "/api/data/v9.2/accounts") {
		t.Fatalf("Copy = %v, want an HTTPError 403 naming the table and URL", err)
	}
	if !strings.Contains(err.Error(), "security role") {
		t.Errorf("error %q does not say what to do", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("gave up after %v, want at once", time.Since(start))
	}
}

func TestCursorExpired(t *testing.T) {
	f, srv := newFake(t)
	for i := range 5 {
		f.upsert(i, "x")
	}
	s := open(t, srv.URL, nil)
	bs := copyAll(t, s, "account", "")
	f.upsert(7, "later")
	f.set(func(f *fake) { f.expireBelow = f.version })

	err := s.Stream(context.Background(), map[string]string{"account": bs[len(bs)-1].Cursors["account"]}, func(context.Context, source.Batch) error { return nil })
	var ce *source.CursorExpiredError
	if !errors.Is(err, source.ErrCursorExpired) || !errors.As(err, &ce) || ce.Table != "account" {
		t.Fatalf("Stream = %v, want a CursorExpiredError for account", err)
	}
	err = s.Copy(context.Background(), "account", bs[0].Cursors["account"], func(context.Context, source.Batch) error { return nil })
	if !errors.As(err, &ce) {
		t.Fatalf("Copy resume = %v, want a CursorExpiredError", err)
	}
}

func TestNew(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>Welcome</html>"))
	}))
	defer html.Close()
	f, srv := newFake(t)
	f.set(func(f *fake) { f.token = "right" })
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"not a URL", Config{URL: "contoso.crm.dynamics.com"}, "not an http(s) URL"},
		{"credentials in the URL", Config{URL: "https://user:s3cr3t@contoso.crm.dynamics.com"}, "must not carry credentials"},
		{"unparsable", Config{URL: "https://contoso.crm.dynamics.com/%zz"}, "is not a URL"},
		{"unreachable", Config{URL: closed.URL}, "cannot reach"},
		{"not dataverse", Config{URL: html.URL}, "other than OData JSON"},
		{"unknown path", Config{URL: srv.URL + "/elsewhere", Auth: Auth{Token: "right"}}, "does not answer as a Dataverse Web API"},
		{"wrong token", Config{URL: srv.URL, Auth: Auth{Token: "wrong"}}, "refused the credentials"},
		{"page size", Config{URL: srv.URL, PageSize: 5001}, "out of range"},
		{"secret without ids", Config{URL: srv.URL, Auth: Auth{Auth: azauth.Auth{ClientSecret: "x"}}}, "need tenant_id and client_id"},
		{"empty secret variable", Config{URL: srv.URL, Auth: Auth{Auth: azauth.Auth{TenantID: "t", ClientID: "c", ClientSecretEnv: "LAKELINK_TEST_UNSET_SECRET"}}}, "LAKELINK_TEST_UNSET_SECRET is empty or unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// The token path: the right token, also with a trailing API path.
	s := open(t, srv.URL+"/api/data/v9.2/", func(c *Config) { c.Auth.Token = "right" })
	if _, err := s.Describe(context.Background(), "account"); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, true},
		{"soon", 0, false},
	} {
		got, ok := retryAfter(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsExpired(t *testing.T) {
	for _, tc := range []struct {
		e    HTTPError
		want bool
	}{
		{HTTPError{Status: 410}, true},
		{HTTPError{Status: 400, Code: "0x80044352"}, true},
		{HTTPError{Status: 400, Message: "The delta token has expired."}, true},
		{HTTPError{Status: 400, Message: "Invalid $select"}, false},
		{HTTPError{Status: 403, Message: "token expired"}, false},
	} {
		if got := isExpired(&tc.e); got != tc.want {
			t.Errorf("isExpired(%+v) = %v", tc.e, got)
		}
	}
}

// TestCopyReadsAhead: the next page is requested while emit still works on
// the previous one, and no further (two pages in memory at most).
func TestCopyReadsAhead(t *testing.T) {
	f, srv := newFake(t)
	for i := range 7 {
		f.upsert(i, "x")
	}
	s := open(t, srv.URL, nil)
	pages := 0
	err := s.Copy(context.Background(), "account", "", func(_ context.Context, b source.Batch) error {
		pages++
		if b.Done {
			return nil
		}
		for deadline := time.Now().Add(5 * time.Second); f.dataReads() <= pages; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("page %d: the next page was not requested while emit ran", pages)
			}
		}
		return nil
	})
	if err != nil || pages != 3 {
		t.Fatalf("Copy: %v after %d pages", err, pages)
	}
	if n := f.dataReads(); n != 3 {
		t.Errorf("%d data reads for 3 pages", n)
	}
}

// TestStreamSchemaChange: a column added at the source is announced in
// Batch.Schemas, selected from then on, and its values flow; a dropped one
// leaves the delta link.
func TestStreamSchemaChange(t *testing.T) {
	f, srv := newFake(t)
	f.upsert(1, "x")
	s := open(t, srv.URL, func(c *Config) { c.SchemaInterval = 20 * time.Millisecond })
	bs := copyAll(t, s, "account", "")
	cur := map[string]string{"account": bs[0].Cursors["account"]}
	f.set(func(f *fake) {
		f.extraAttrs = []map[string]any{{"LogicalName": "new_rating", "AttributeType": "Integer", "AttributeTypeName": map[string]any{"Value": "IntegerType"}, "IsValidForRead": true, "ColumnNumber": 99}}
	})
	got, cur := streamUntil(t, s, cur, func(b []source.Batch) bool { return b[len(b)-1].Schemas != nil })
	tbl := got[len(got)-1].Schemas["account"]
	if c, ok := tbl.Column("new_rating"); !ok || c.Type != "int64" || len(tbl.OptionSets) == 0 {
		t.Fatalf("new schema %+v", tbl)
	}
	c, _ := parseCursor("account", cur["account"])
	if !strings.Contains(c.Link, "new_rating") || !strings.Contains(c.Link, "deltatoken") {
		t.Errorf("cursor after the schema change = %s", c.Link)
	}
	f.setVal(1, "new_rating", 5)
	got, _ = streamUntil(t, s, cur, func(b []source.Batch) bool { return len(changes(b)) >= 1 })
	if ch := changes(got)[0]; value(ch, "new_rating") != int64(5) {
		t.Errorf("change after the schema change = %+v", ch)
	}
	f.mu.Lock()
	last := f.selects[len(f.selects)-1]
	f.mu.Unlock()
	if !strings.Contains(last, "new_rating") {
		t.Errorf("delta read selected %q", last)
	}
}

func TestWithSelect(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/api/data/v9.2/accounts?$select=a,b&$deltatoken=9%2108", "/api/data/v9.2/accounts?$select=x%2Cy&$deltatoken=9%2108"},
		{"/api/data/v9.2/accounts?%24select=a&$deltatoken=1", "/api/data/v9.2/accounts?$select=x%2Cy&$deltatoken=1"},
		{"/api/data/v9.2/accounts?$deltatoken=1", "/api/data/v9.2/accounts?$deltatoken=1&$select=x%2Cy"},
		{"/api/data/v9.2/accounts", "/api/data/v9.2/accounts?$select=x%2Cy"},
	} {
		if got := withSelect(tc.in, "x,y"); got != tc.want {
			t.Errorf("withSelect(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
