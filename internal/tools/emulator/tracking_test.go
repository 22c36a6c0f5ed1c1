package emulator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readAll follows next links from link and returns every entry and the
// number of pages; it checks that only the last page has a delta link.
func readAll(t *testing.T, v *env, link string, pageSize int) (entries []map[string]any, pages int, delta string) {
	t.Helper()
	prefer := fmt.Sprintf("odata.track-changes, odata.maxpagesize=%d", pageSize)
	for link != "" {
		p := decodePage(t, v.do(t, "GET", link, "", "Prefer", prefer))
		pages++
		if (p.NextLink == "") == (p.DeltaLink == "") {
			t.Fatalf("page %d of %s: next link %q, delta link %q; want exactly one", pages, link, p.NextLink, p.DeltaLink)
		}
		if p.NextLink != "" && len(p.Value) != pageSize {
			t.Fatalf("page %d has %d entries and a next link; want full pages of %d", pages, len(p.Value), pageSize)
		}
		entries = append(entries, p.Value...)
		link, delta = p.NextLink, p.DeltaLink
	}
	return entries, pages, delta
}

func TestPagingBoundaries(t *testing.T) {
	for _, rows := range []int{0, 1, 5, 10} {
		for _, size := range []int{1, 3, 5, 10, 5000} {
			t.Run(fmt.Sprintf("rows=%d/size=%d", rows, size), func(t *testing.T) {
				v := start(t, Config{Scale: 1, Counts: map[string]int{"account": rows}})
				got, pages, delta := readAll(t, v, "accounts?$select=name", size)
				if len(got) != rows {
					t.Fatalf("first read: %d rows, want %d", len(got), rows)
				}
				if want := max(1, (rows+size-1)/size); pages != want {
					t.Errorf("first read: %d pages, want %d", pages, want)
				}
				seen := map[any]bool{}
				for _, r := range got {
					if seen[r["accountid"]] {
						t.Fatalf("row %v served twice", r["accountid"])
					}
					seen[r["accountid"]] = true
				}
				// As many changes as rows, plus one create: the delta read
				// pages the same way.
				for i := range rows + 1 {
					if a := v.do(t, "POST", "accounts", fmt.Sprintf(`{"name":"n%d"}`, i)); a.status != http.StatusNoContent {
						t.Fatalf("create: %d %s", a.status, a.body)
					}
				}
				changes, pages, _ := readAll(t, v, delta, size)
				if len(changes) != rows+1 {
					t.Fatalf("delta read: %d changes, want %d", len(changes), rows+1)
				}
				if want := max(1, (rows+1+size-1)/size); pages != want {
					t.Errorf("delta read: %d pages, want %d", pages, want)
				}
			})
		}
	}
}

// TestRestartKeepsTokens checks that data and delta tokens survive a
// restart, and that the state directory, not the new Config, decides the
// data.
func TestRestartKeepsTokens(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(context.Background(), Config{Dir: dir, Scale: 20, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	v := &env{e: e, srv: srv, api: srv.URL + apiPrefix}
	_, _, delta := readAll(t, v, "accounts?$select=name", 7)
	mid := decodePage(t, v.do(t, "GET", "contacts?$select=fullname", "", "Prefer", "odata.track-changes, odata.maxpagesize=15")).NextLink
	id := seqID(e.layout["account"].Base, 4)
	if a := v.do(t, "PATCH", "accounts("+id.String()+")", `{"name":"before restart"}`); a.status != http.StatusNoContent {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}
	srv.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	v = start(t, Config{Dir: dir, Scale: 99, Seed: 4})
	delta = v.srv.URL + delta[strings.Index(delta, apiPrefix):]
	rest, _, _ := readAll(t, v, v.srv.URL+mid[strings.Index(mid, apiPrefix):], 15)
	if len(rest) != 5 {
		t.Errorf("first read continued after restart: %d more contacts, want 5", len(rest))
	}
	changes, _, delta2 := readAll(t, v, delta, 7)
	if len(changes) != 1 || changes[0]["name"] != "before restart" {
		t.Fatalf("delta after restart: %v; want the one change made before it", changes)
	}
	all, _, _ := readAll(t, v, "accounts?$select=name", 100)
	if len(all) != 20 {
		t.Fatalf("after restart with another scale: %d accounts, want the 20 of the directory", len(all))
	}
	if a := v.do(t, "DELETE", "accounts("+id.String()+")", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	changes, _, _ = readAll(t, v, delta2, 7)
	if len(changes) != 1 || changes[0]["reason"] != "deleted" {
		t.Fatalf("delta after a delete: %v", changes)
	}
}

// seenState is what a consumer knows of one row.
type seenState struct {
	version float64
	name    any
}

// TestConcurrentWritesDuringPaging checks the change-tracking invariant
// (changes.go): with writes running while a consumer pages through a first
// read and then follows delta links, the consumer never sees a row go back
// to an older version and ends up with exactly the table's state.
func TestConcurrentWritesDuringPaging(t *testing.T) {
	v := start(t, Config{Scale: 1, Seed: 5, Counts: map[string]int{"account": 300}})
	var mu sync.Mutex
	var live []string
	for i := range 300 {
		live = append(live, seqID(v.e.layout["account"].Base, uint64(i)).String())
	}
	stop := make(chan struct{})
	writes := make(chan error, 1)
	var count atomic.Int64
	go func() { writes <- write(v, stop, &mu, &live, &count) }()
	state := map[string]seenState{}
	apply := func(entries []map[string]any) {
		for _, e := range entries {
			if e["reason"] == "deleted" {
				delete(state, e["id"].(string))
				continue
			}
			id := e["accountid"].(string)
			ver := e["versionnumber"].(float64)
			if old, ok := state[id]; ok && ver < old.version {
				t.Fatalf("row %s went back from version %v to %v", id, old.version, ver)
			}
			state[id] = seenState{ver, e["name"]}
		}
	}
	entries, _, delta := readAll(t, v, "accounts?$select=name,versionnumber", 7)
	apply(entries)
	// Keep reading while the writer works, until it made enough changes.
	deadline := time.Now().Add(20 * time.Second)
	for count.Load() < 300 && time.Now().Before(deadline) {
		entries, _, delta = readAll(t, v, delta, 7)
		apply(entries)
	}
	close(stop)
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	entries, _, _ = readAll(t, v, delta, 7)
	apply(entries)

	truth := map[string]seenState{}
	for link := "accounts?$select=name,versionnumber"; link != ""; {
		p := decodePage(t, v.do(t, "GET", link, ""))
		for _, e := range p.Value {
			truth[e["accountid"].(string)] = seenState{e["versionnumber"].(float64), e["name"]}
		}
		link = p.NextLink
	}
	if len(truth) == 0 {
		t.Fatal("no rows left: the writer deleted everything; the test proves nothing")
	}
	for id, s := range truth {
		if state[id] != s {
			t.Errorf("row %s: consumer has %+v, table has %+v", id, state[id], s)
		}
	}
	for id := range state {
		if _, ok := truth[id]; !ok {
			t.Errorf("row %s: consumer still has it, the table does not", id)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	v := start(t, Config{Scale: 3})
	_, _, delta := readAll(t, v, "accounts?$select=name", 10)
	v.e.SetFaults(Faults{TokenMaxAge: time.Hour})
	if a := v.do(t, "GET", delta, ""); a.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
	v.e.now = func() time.Time { return fixedNow.Add(2 * time.Hour) }
	a := v.do(t, "GET", delta, "")
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), codeExpiredVersionStamp) {
		t.Fatalf("expired token: %d %s; want 400 %s", a.status, a.body, codeExpiredVersionStamp)
	}
}

// write creates, updates and deletes accounts at random until stop closes;
// it returns how the first failed request failed.
func write(v *env, stop chan struct{}, mu *sync.Mutex, live *[]string, count *atomic.Int64) error {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; ; n++ {
		select {
		case <-stop:
			if n < 300 {
				return fmt.Errorf("only %d writes ran during the reads: the test proves nothing", n)
			}
			return nil
		default:
		}
		count.Add(1)
		mu.Lock()
		op, i := r.IntN(3), r.IntN(len(*live))
		id := (*live)[i]
		mu.Unlock()
		switch op {
		case 0:
			a, err := v.send("POST", "accounts", fmt.Sprintf(`{"name":"new %d"}`, n))
			if err != nil || a.status != http.StatusNoContent {
				return fmt.Errorf("create: %v %d %s", err, a.status, a.body)
			}
			id := a.header.Get("OData-EntityId")
			id = id[strings.LastIndex(id, "(")+1 : len(id)-1]
			mu.Lock()
			*live = append(*live, id)
			mu.Unlock()
		case 1:
			if _, err := v.send("PATCH", "accounts("+id+")", fmt.Sprintf(`{"name":"upd %d"}`, n)); err != nil {
				return err
			}
		case 2:
			a, err := v.send("DELETE", "accounts("+id+")", "")
			if err != nil {
				return err
			}
			if a.status == http.StatusNoContent {
				mu.Lock()
				for j, x := range *live {
					if x == id {
						*live = append((*live)[:j], (*live)[j+1:]...)
						break
					}
				}
				mu.Unlock()
			}
		}
	}
}

// TestRecreatedDirectory: a token from a state directory that was deleted
// and recreated is answered as expired, so a client copies afresh.
func TestRecreatedDirectory(t *testing.T) {
	dir := t.TempDir()
	v := start(t, Config{Dir: dir + "/a", Scale: 3})
	v.do(t, "POST", "accounts", `{"name":"only in the old directory"}`)
	_, _, delta := readAll(t, v, "accounts?$select=name", 10)
	w := start(t, Config{Dir: dir + "/b", Scale: 3})
	a := w.do(t, "GET", w.srv.URL+delta[strings.Index(delta, apiPrefix):], "")
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), codeExpiredVersionStamp) {
		t.Fatalf("foreign token: %d %s; want 400 %s", a.status, a.body, codeExpiredVersionStamp)
	}
}
