package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/bench/dvfloor"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// call sends a write to the emulator at base and returns the record id
// from OData-EntityId (for creates) or the one given.
func call(t *testing.T, method, base, path string, body any) string {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, base+apiPath+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("OData-Version", "4.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e := errorFromResponse("", path, resp)
		t.Fatalf("%s %s: %v", method, path, e)
	}
	loc := resp.Header.Get("OData-EntityId")
	if i := strings.LastIndexByte(loc, '('); i >= 0 {
		return strings.TrimSuffix(loc[i+1:], ")")
	}
	return ""
}

// copyTable copies table and checks the batches' shape: no id twice, the
// last one Done with a delta cursor.
func copyTable(t *testing.T, s *Source, table string) (map[string]source.Change, string) {
	t.Helper()
	bs := copyAll(t, s, table, "")
	rows := map[string]source.Change{}
	for i, b := range bs {
		if b.Done != (i == len(bs)-1) {
			t.Fatalf("%s batch %d of %d: Done = %v", table, i, len(bs), b.Done)
		}
		for _, c := range b.Changes {
			if _, dup := rows[c.ID]; dup {
				t.Fatalf("%s: %s copied twice", table, c.ID)
			}
			rows[c.ID] = c
		}
	}
	return rows, bs[len(bs)-1].Cursors[table]
}

// TestEmulatorCopy copies every tracked table across page boundaries and
// checks the row counts against the benchmark floor's plain paging loop.
func TestEmulatorCopy(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 23, Seed: 7})
	s := open(t, url, func(c *Config) { c.PageSize = 5 })
	tables, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]string{"account": "accounts", "contact": "contacts", "lead": "leads", "opportunity": "opportunities", "systemuser": "systemusers", "accountleads": "accountleadscollection"}
	for _, ti := range tables {
		if !ti.Tracked {
			if _, err := s.Describe(context.Background(), ti.Name); !errors.As(err, new(*source.NotTrackedError)) {
				t.Errorf("Describe(%s), not tracked: %v", ti.Name, err)
			}
			continue
		}
		tb, err := s.Describe(context.Background(), ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tb.AppendOnly != (ti.Name == "accountleads") || (tb.PartitionColumn == "createdon") == tb.AppendOnly {
			t.Errorf("%s: AppendOnly %v, PartitionColumn %q", ti.Name, tb.AppendOnly, tb.PartitionColumn)
		}
		if ti.Name == "account" {
			labelled := 0
			for _, os := range tb.OptionSets {
				for _, o := range os.Options {
					if o.Language == 1033 && o.Label != "" {
						labelled++
					}
				}
			}
			if labelled == 0 || len(tb.States) == 0 || len(tb.Statuses) == 0 {
				t.Errorf("account choice metadata: %d labelled options, %d states, %d statuses", labelled, len(tb.States), len(tb.Statuses))
			}
			if c, _ := tb.Column("ownerid"); c.Type != "guid" || len(c.Targets) == 0 {
				t.Errorf("account ownerid = %+v, want a guid lookup with targets", c)
			}
		}
		rows, cur := copyTable(t, s, ti.Name)
		if _, err := parseCursor(ti.Name, cur); err != nil {
			t.Errorf("%s: last cursor %q: %v", ti.Name, cur, err)
		}
		want, err := dvfloor.RawPageThrough(context.Background(), url, sets[ti.Name], 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(rows)) != want || want == 0 {
			t.Errorf("%s: copied %d rows, the plain paging loop counts %d", ti.Name, len(rows), want)
		}
		for id, c := range rows {
			if value(c, tb.Key[0]) != id || c.Version <= 0 {
				t.Errorf("%s: row %s: key %v version %d", ti.Name, id, value(c, tb.Key[0]), c.Version)
				break
			}
		}
	}
}

// TestEmulatorStreamValues streams what the contract suite (TestContract)
// leaves to the connector: a create's values come through as written
// (quotes, a decimal), and re-creating a deleted id (PATCH upserts) orders
// after the delete.
func TestEmulatorStreamValues(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 12, Seed: 3})
	s := open(t, url, func(c *Config) { c.PageSize = 4 })
	rows, cur := copyTable(t, s, "account")
	var id string
	for id = range rows {
		break
	}
	cursors := map[string]string{"account": cur}

	created := call(t, http.MethodPost, url, "accounts", map[string]any{"name": "Fourth Coffee \"new\"", "revenue": 1234.5})
	call(t, http.MethodDelete, url, "accounts("+id+")", nil)
	got, cursors := streamUntil(t, s, cursors, func(b []source.Batch) bool { return len(changes(b)) >= 2 })
	byID := map[string]source.Change{}
	for _, c := range changes(got) {
		byID[c.ID] = c
	}
	if c := byID[strings.ToLower(created)]; value(c, "name") != "Fourth Coffee \"new\"" || value(c, "revenue") == nil {
		t.Errorf("create: %+v", c)
	}
	del := byID[id]
	if !del.Deleted {
		t.Fatalf("delete of %s not delivered: %+v", id, del)
	}
	call(t, http.MethodPatch, url, "accounts("+id+")", map[string]any{"name": "back again"})
	got, _ = streamUntil(t, s, cursors, func(b []source.Batch) bool { return len(changes(b)) >= 1 })
	re := changes(got)[len(changes(got))-1]
	if re.ID != id || re.Deleted || re.Version <= del.Version || value(re, "name") != "back again" {
		t.Errorf("re-create %+v does not order after the delete's version %d", re, del.Version)
	}
}

// TestEmulatorFaults copies and streams through throttling and server
// errors: nothing lost, nothing twice, throttling reported.
func TestEmulatorFaults(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{Scale: 30, Seed: 5})
	ev := &events{}
	s := open(t, url, func(c *Config) { c.PageSize = 10; c.Events = ev })
	want, err := dvfloor.RawPageThrough(context.Background(), url, "contacts", 5000, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.SetFaults(emulator.Faults{ThrottleRate: 0.2, RetryAfter: time.Second, ErrorRate: 0.2})
	start := time.Now()
	rows, cur := copyTable(t, s, "contact")
	if int64(len(rows)) != want {
		t.Errorf("copied %d contacts under faults, want %d", len(rows), want)
	}
	var id string
	for id = range rows {
		break
	}
	e.SetFaults(emulator.Faults{})
	call(t, http.MethodPatch, url, "contacts("+id+")", map[string]any{"firstname": "Faulty"})
	e.SetFaults(emulator.Faults{ThrottleRate: 0.3, RetryAfter: time.Second, ErrorRate: 0.3})
	got, _ := streamUntil(t, s, map[string]string{"contact": cur}, func(b []source.Batch) bool { return len(changes(b)) >= 1 })
	if cs := changes(got); len(cs) != 1 || cs[0].ID != id || value(cs[0], "firstname") != "Faulty" {
		t.Errorf("stream under faults delivered %+v", cs)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	// One retry loop may report both (a 429, then a 500) and ends with
	// one Unthrottled. TestRetries tells the two kinds apart.
	if n := ev.unthrottled["contact"]; ev.throttled["contact"] == 0 || n == 0 || n > ev.throttled["contact"]+ev.unreachable["contact"] {
		t.Errorf("events: throttled %v unreachable %v unthrottled %v", ev.throttled, ev.unreachable, ev.unthrottled)
	}
	t.Logf("faults run took %v", time.Since(start))
}

// TestEmulatorRestart: a cursor taken before the emulator restarts (same
// state directory, new address) still works after.
func TestEmulatorRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := emulator.Config{Dir: dir, Scale: 8, Seed: 2}
	e1, err := emulator.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv1 := httptest.NewServer(e1.Handler())
	s1 := open(t, srv1.URL, nil)
	rows, cur := copyTable(t, s1, "opportunity")
	var id string
	for id = range rows {
		break
	}
	call(t, http.MethodPatch, srv1.URL, "opportunities("+id+")", map[string]any{"name": "before restart"})
	srv1.Close()
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}

	_, url := emulatortest.Start(t, cfg)
	s2 := open(t, url, nil)
	got, _ := streamUntil(t, s2, map[string]string{"opportunity": cur}, func(b []source.Batch) bool { return len(changes(b)) >= 1 })
	if cs := changes(got); len(cs) != 1 || cs[0].ID != id || value(cs[0], "name") != "before restart" {
		t.Errorf("after restart: %+v", cs)
	}
}

// TestEmulatorBearerToken: the token path, and a clear error without it.
func TestEmulatorBearerToken(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 3, Seed: 1, Token: "emulator-token"})
	if _, err := New(context.Background(), Config{URL: url}); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("New without a token = %v, want HTTP 401", err)
	}
	s := open(t, url, func(c *Config) { c.Auth.Token = "emulator-token" })
	if rows, _ := copyTable(t, s, "systemuser"); len(rows) == 0 {
		t.Error("no systemusers")
	}
}

// TestEmulatorStreamJoin joins a table to a running stream: the stream
// goes on (no restart) and delivers the joined table's changes after its
// copy, and none of what the copy already holds.
func TestEmulatorStreamJoin(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 12, Seed: 3})
	s := open(t, url, nil)
	_, accounts := copyTable(t, s, "account")
	_, contacts := copyTable(t, s, "contact")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	join := make(chan map[string]string)
	seen := map[string]int{}
	var got []source.Change
	done := make(chan error, 1)
	go func() {
		done <- s.StreamJoin(ctx, map[string]string{"account": accounts}, join, func(_ context.Context, b source.Batch) error {
			for name := range b.Cursors {
				seen[name]++
			}
			got = append(got, b.Changes...)
			if len(got) > 0 && seen["account"] > 0 {
				cancel()
			}
			return nil
		})
	}()
	join <- map[string]string{"contact": contacts}
	call(t, http.MethodPost, url, "contacts", map[string]any{"lastname": "joined"})
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("StreamJoin ended with %v", err)
	}
	if seen["account"] == 0 || seen["contact"] == 0 {
		t.Errorf("batches named the tables %v times; want both", seen)
	}
	for _, c := range got {
		if c.Table != "contact" || value(c, "lastname") != "joined" {
			t.Errorf("change %s of %s delivered: the copies hold every other row", c.ID, c.Table)
		}
	}
}
