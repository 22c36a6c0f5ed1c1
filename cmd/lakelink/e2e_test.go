package main

// End-to-end tests: the lakelink binary against the Dataverse emulator, as a
// user runs it. The crash test kills `lakelink sync` with SIGKILL at random
// points and checks, after every restart, that the lake equals the source.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lakelink-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "lakelink")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lakelink:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs lakelink with args and returns its stdout, failing the test on a
// non-zero exit unless wantCode says otherwise.
func run(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	out, errs, code := runExit(t, args...)
	if code != wantCode {
		t.Fatalf("lakelink %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, errs)
	}
	return out
}

// runExit runs lakelink with args and returns its stdout, stderr and exit
// code.
func runExit(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func writeProfile(t *testing.T, dir, url, tables string) string {
	t.Helper()
	p := filepath.Join(dir, "link.yaml")
	body := fmt.Sprintf(`name: e2e
source:
  type: dataverse
  url: %s
  poll_interval: 50ms
  max_poll_interval: 500ms
  requests_per_second: 500
lake:
  path: ./lake
tables:
%s`, url, tables)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// queryCSV runs a query through the CLI and returns its rows without the header.
func queryCSV(t *testing.T, profile, sql string) [][]string {
	t.Helper()
	out := run(t, 0, "query", "-c", profile, "--format", "csv", sql)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("query output is not CSV: %v\n%s", err, out)
	}
	if len(recs) == 0 {
		t.Fatalf("query printed no header:\n%s", out)
	}
	return recs[1:]
}

// sourceRows pages through an entity set of the emulator and returns
// "id/versionnumber" for every row, sorted.
func sourceRows(t *testing.T, url, set, key string) []string {
	t.Helper()
	var out []string
	next := fmt.Sprintf("%s/api/data/v9.2/%s?$select=%s,versionnumber", url, set, key)
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Prefer", "odata.maxpagesize=5000")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		dec := json.NewDecoder(resp.Body)
		dec.UseNumber()
		err = dec.Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Value {
			out = append(out, fmt.Sprintf("%v/%v", r[key], r["versionnumber"]))
		}
		next = page.NextLink
	}
	slices.Sort(out)
	return out
}

func lakeRows(t *testing.T, profile, table string) []string {
	t.Helper()
	var out []string
	for _, r := range queryCSV(t, profile, fmt.Sprintf("SELECT Id, versionnumber FROM %s", table)) {
		out = append(out, r[0]+"/"+r[1])
	}
	slices.Sort(out)
	return out
}

func assertSameRows(t *testing.T, url, profile, table, set, key string) {
	t.Helper()
	src, lk := sourceRows(t, url, set, key), lakeRows(t, profile, table)
	if !slices.Equal(src, lk) {
		t.Fatalf("%s: lake differs from source: %d source rows, %d lake rows\nfirst differences: %s", table, len(src), len(lk), firstDiff(src, lk))
	}
	if d := queryCSV(t, profile, fmt.Sprintf("SELECT Id FROM %s GROUP BY Id HAVING count(*) > 1", table)); len(d) > 0 {
		t.Fatalf("%s: Ids present twice: %v", table, d)
	}
}

func firstDiff(a, b []string) string {
	in := func(s []string, x string) bool { _, ok := slices.BinarySearch(s, x); return ok }
	var d []string
	for _, x := range a {
		if !in(b, x) && len(d) < 5 {
			d = append(d, "missing "+x)
		}
	}
	for _, x := range b {
		if !in(a, x) && len(d) < 10 {
			d = append(d, "extra "+x)
		}
	}
	return strings.Join(d, ", ")
}

func TestSyncQueryStatusUnlink(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 300, Seed: 7})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, `  - name: contact
  - name: account
    append_only: true
  - name: opportunity
    partition: month
`)
	run(t, 0, "sync", "-c", profile, "--once")
	assertSameRows(t, url, profile, "contact", "contacts", "contactid")
	assertSameRows(t, url, profile, "opportunity", "opportunities", "opportunityid")
	// sync --once leaves a finished lake: the snapshot model.json points at.
	live, snap := queryCSV(t, profile, "SELECT count(*) FROM contact"), queryCSV(t, profile, "SELECT count(*) FROM contact_partitioned")
	if live[0][0] != snap[0][0] {
		t.Fatalf("contact has %s rows, its snapshot %s", live[0][0], snap[0][0])
	}
	var model struct {
		Entities []struct {
			Name       string
			Partitions []struct{ Location string }
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "lake", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &model); err != nil {
		t.Fatal(err)
	}
	for _, e := range model.Entities {
		if len(e.Partitions) == 0 {
			t.Errorf("model.json: %s has no partitions", e.Name)
		}
	}
	if len(model.Entities) != 3 {
		t.Errorf("model.json has %d entities, want 3", len(model.Entities))
	}

	var status struct {
		Tables []struct {
			Name, State string
			Rows        int64
		}
	}
	if err := json.Unmarshal([]byte(run(t, 0, "status", "-c", profile, "--json")), &status); err != nil {
		t.Fatal(err)
	}
	if len(status.Tables) != 3 {
		t.Fatalf("status lists %d tables, want 3", len(status.Tables))
	}
	for _, tb := range status.Tables {
		if tb.State != "Completed" || tb.Rows == 0 {
			t.Errorf("status of %s: %s with %d rows", tb.Name, tb.State, tb.Rows)
		}
	}
	if out := run(t, 0, "status", "-c", profile); !strings.Contains(out, "contact") || !strings.Contains(out, "Completed") {
		t.Errorf("status table output:\n%s", out)
	}

	// Changes at the source reach the lake on the next sync.
	ctx := context.Background()
	c := &demo.Client{URL: url}
	id, err := c.Create(ctx, "contacts", map[string]any{"firstname": "Grace", "lastname": "Hopper \"Amazing\" 🚀\nNavy"})
	if err != nil {
		t.Fatal(err)
	}
	victim := strings.Split(sourceRows(t, url, "contacts", "contactid")[0], "/")[0]
	if err := c.Delete(ctx, "contacts", victim); err != nil {
		t.Fatal(err)
	}
	run(t, 0, "sync", "-c", profile, "--once")
	assertSameRows(t, url, profile, "contact", "contacts", "contactid")
	got := queryCSV(t, profile, fmt.Sprintf("SELECT lastname FROM contact WHERE Id = '%s'", id))
	if len(got) != 1 || got[0][0] != "Hopper \"Amazing\" 🚀\nNavy" {
		t.Fatalf("odd string came back as %q", got)
	}
	// Append-only: every change is a row; the latest per Id is the record.
	if n := queryCSV(t, profile, "SELECT count(*) FROM account"); n[0][0] == "0" {
		t.Fatal("append-only account is empty")
	}
	// --lake reads the same lake without the profile.
	lakeDir := filepath.Join(dir, "lake")
	if out := run(t, 0, "query", "--lake", lakeDir, "--format", "json", "SELECT count(*) AS n FROM contact"); !strings.Contains(out, `"n"`) {
		t.Fatalf("json output: %s", out)
	}
	for _, f := range []string{"model.json", "OptionsetMetadata/OptionsetMetadata.csv", "Microsoft.Athena.TrickleFeedService/contact-model.json"} {
		if _, err := os.Stat(filepath.Join(lakeDir, f)); err != nil {
			t.Errorf("lake lacks %s: %v", f, err)
		}
	}

	run(t, 0, "unlink", "-c", profile, "--delete-data")
	if _, err := os.Stat(filepath.Join(lakeDir, "contact")); !os.IsNotExist(err) {
		t.Fatalf("unlink --delete-data left the contact folder: %v", err)
	}
}

func TestProfileErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte("name: x\nsource:\n  type: dataverse\n  url: http://127.0.0.1:1\nlake:\n  path: l\ntables:\n  - name: contact\n    partition: weekly\n"), 0o644)
	var errb bytes.Buffer
	cmd := exec.Command(binary, "sync", "-c", p, "--once")
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil {
		t.Fatal("sync accepted a bad profile")
	}
	if !strings.Contains(errb.String(), "bad.yaml:9: tables[0].partition") {
		t.Fatalf("error does not locate the field:\n%s", errb.String())
	}
	// An unreachable source is a clear error, not a hang.
	os.WriteFile(p, []byte("name: x\nsource:\n  type: dataverse\n  url: http://127.0.0.1:1\nlake:\n  path: l\ntables:\n  - name: contact\n"), 0o644)
	errb.Reset()
	cmd = exec.Command(binary, "sync", "-c", p, "--once")
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil {
		t.Fatal("sync against an unreachable source succeeded")
	}
	if !strings.Contains(errb.String(), "127.0.0.1:1") {
		t.Fatalf("error does not name the source:\n%s", errb.String())
	}
}

// TestCrash kills `lakelink sync` with SIGKILL at random points of the
// initial and of the incremental sync while the source changes; after every
// restart the lake must converge to the source, row for row.
func TestCrash(t *testing.T) {
	emu, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 3000, Seed: 11})
	emu.SetFaults(emulator.Faults{Latency: 2 * time.Millisecond})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, `  - name: contact
  - name: account
    append_only: true
  - name: opportunity
    partition: month
`)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		churn(ctx, t, url)
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 8 {
		cmd := exec.Command(binary, "sync", "-c", profile)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Early kills land in the initial sync, later ones in the incremental.
		wait := time.Duration(50+rng.IntN(300*(i+1))) * time.Millisecond
		time.Sleep(wait)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if strings.Contains(errb.String(), "panic") {
			t.Fatalf("sync panicked:\n%s", errb.String())
		}
	}
	stop()
	wg.Wait()
	run(t, 0, "sync", "-c", profile, "--once")
	assertSameRows(t, url, profile, "contact", "contacts", "contactid")
	assertSameRows(t, url, profile, "opportunity", "opportunities", "opportunityid")
	// The append-only table holds every change: its latest row per Id is
	// the source's row.
	latest := queryCSV(t, profile, `SELECT Id, versionnumber FROM (
  SELECT Id, versionnumber, IsDelete, row_number() OVER (PARTITION BY Id ORDER BY versionnumber DESC) AS rn FROM account)
WHERE rn = 1 AND IsDelete IS NOT TRUE`)
	var got []string
	for _, r := range latest {
		got = append(got, r[0]+"/"+r[1])
	}
	slices.Sort(got)
	if src := sourceRows(t, url, "accounts", "accountid"); !slices.Equal(src, got) {
		t.Fatalf("account (append-only): latest rows differ from source: %s", firstDiff(src, got))
	}
}

// churn creates, updates and deletes contacts, accounts and opportunities
// until ctx ends.
func churn(ctx context.Context, t *testing.T, url string) {
	c := &demo.Client{URL: url}
	rng := rand.New(rand.NewPCG(3, 4))
	ids := map[string][]string{}
	sets := []string{"contacts", "accounts", "opportunities"}
	names := map[string]string{"contacts": "lastname", "accounts": "name", "opportunities": "name"}
	for i := 0; ctx.Err() == nil; i++ {
		set := sets[rng.IntN(len(sets))]
		switch known := ids[set]; {
		case len(known) == 0 || rng.IntN(3) == 0:
			id, err := c.Create(ctx, set, map[string]any{names[set]: fmt.Sprintf("churn %d, \"quoted\"", i)})
			if err == nil {
				ids[set] = append(known, id)
			}
		case rng.IntN(4) == 0:
			j := rng.IntN(len(known))
			if err := c.Delete(ctx, set, known[j]); err == nil || ctx.Err() == nil {
				ids[set] = slices.Delete(known, j, j+1)
			}
		default:
			_ = c.Update(ctx, set, known[rng.IntN(len(known))], map[string]any{names[set]: fmt.Sprintf("churn %d updated", i)})
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestBearerToken runs a link against an emulator that requires a token:
// the token comes from the variable the profile names and never shows in
// the output.
func TestBearerToken(t *testing.T) {
	const token = "tok-9f8e7d6c5b4a"
	_, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 50, Seed: 1, Token: token})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, "  - name: contact\n")
	b, _ := os.ReadFile(profile)
	os.WriteFile(profile, []byte(strings.Replace(string(b), "  requests_per_second: 500\n", "  requests_per_second: 500\n  auth:\n    token_env: LL_TEST_TOKEN\n", 1)), 0o644)

	cmd := exec.Command(binary, "sync", "-c", profile, "--once", "-v")
	cmd.Env = append(os.Environ(), "LL_TEST_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sync with the token: %v\n%s", err, out)
	}
	if strings.Contains(string(out), token) {
		t.Fatal("the token appears in the output")
	}
	cmd = exec.Command(binary, "sync", "-c", profile, "--once")
	cmd.Env = append(os.Environ(), "LL_TEST_TOKEN=wrong")
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatal("sync with a wrong token succeeded")
	}
	if !strings.Contains(string(out), "401") && !strings.Contains(strings.ToLower(string(out)), "unauthorized") {
		t.Fatalf("a wrong token is not reported as such:\n%s", out)
	}
}

// TestOnceExitCode: sync --once exits 2 when a table cannot complete, and
// says which and why; the other tables are synced all the same.
func TestOnceExitCode(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 50, Seed: 1})
	profile := writeProfile(t, t.TempDir(), url, "  - name: contact\n  - name: competitor\n")
	cmd := exec.Command(binary, "sync", "-c", profile, "--once")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("sync --once with an untracked table: %v, want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "competitor") || !strings.Contains(string(out), "Track changes") {
		t.Fatalf("the error does not name the table and the fix:\n%s", out)
	}
	assertSameRows(t, url, profile, "contact", "contacts", "contactid")
}
