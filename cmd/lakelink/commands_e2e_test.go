package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/tools/demo"
)

func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := run(t, 0, "demo", "--dir", dir, "--scale", "500")
	for _, want := range []string{
		"Initial sync completed.",
		"create contact 'Ada Lovelace'",
		"visible in SQL after",
		"delete her",
		"Qualify", // a choice label joined from OptionsetMetadata
		filepath.Join(dir, "lake"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lake", "model.json")); err != nil {
		t.Fatal(err)
	}
	// The demo's lake answers SQL about the contact with a CR LF note, and
	// returns the note byte for byte.
	lakeDir := filepath.Join(dir, "lake")
	if n := run(t, 0, "query", "--lake", lakeDir, "--format", "csv", "select count(*) from contact"); !strings.Contains(n, "\n") {
		t.Errorf("count(*) printed %q", n)
	}
	// A file URL names the same lake, and status names it by its folder.
	byURL := run(t, 0, "query", "--lake", "file://"+lakeDir, "--format", "csv", "select count(*) from contact")
	if byPath := run(t, 0, "query", "--lake", lakeDir, "--format", "csv", "select count(*) from contact"); byURL != byPath {
		t.Errorf("--lake file://%s counted %q, --lake %s %q", lakeDir, byURL, lakeDir, byPath)
	}
	if out := run(t, 0, "status", "--lake", "file://"+lakeDir); !strings.Contains(out, "lake "+lakeDir+"\n") {
		t.Errorf("status does not name the lake folder:\n%s", out)
	}
	var notes []map[string]string
	if err := json.Unmarshal([]byte(run(t, 0, "query", "--lake", lakeDir, "--format", "json", "select description from contact where lastname = 'Hopper'")), &notes); err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0]["description"] != demo.DemoNote {
		t.Errorf("the demo contact's note reads back as %q, want %q", notes, demo.DemoNote)
	}
	// A second demo in the same folder starts afresh; a folder it did not
	// make is refused.
	run(t, 0, "demo", "--dir", dir, "--scale", "200")
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious.txt"), []byte("x"), 0o644)
	run(t, 1, "demo", "--dir", other)
}

// TestLakeUnknownScheme: a lake URL no store opens fails before anything
// is read, naming the scheme and every scheme this lakelink opens.
func TestLakeUnknownScheme(t *testing.T) {
	for _, args := range [][]string{
		{"query", "--lake", "gs://bucket/sales", "select 1"},
		{"status", "--lake", "gs://bucket/sales"},
		{"unlink", "--lake", "gs://bucket/sales"},
	} {
		_, stderr, code := runExit(t, args...)
		if code == 0 || !strings.Contains(stderr, `no store for the scheme "gs"`) || !strings.Contains(stderr, "opens: "+strings.Join(store.Schemes(), ", ")+"\n") || !slices.Contains(store.Schemes(), "file") {
			t.Errorf("lakelink %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestEmulatorCommand(t *testing.T) {
	cmd := exec.Command(binary, "emulator", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--scale", "100")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	urlRE := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	lines := bufio.NewScanner(stdout)
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" && time.Now().Before(deadline) && lines.Scan() {
		url = urlRE.FindString(lines.Text())
	}
	if url == "" {
		t.Fatal("the emulator did not print its URL")
	}
	go io.Copy(io.Discard, stdout)
	resp, err := http.Get(url + "/api/data/v9.2/EntityDefinitions?$select=LogicalName,ChangeTrackingEnabled")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"LogicalName":"contact"`) {
		t.Fatalf("EntityDefinitions: %s\n%s", resp.Status, body)
	}
	stopCleanly(t, cmd, syscall.SIGINT, 10*time.Second)
}

// stopCleanly sends sig to cmd and fails t unless it exits 0 within limit.
func stopCleanly(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, limit time.Duration) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s exited with %v after %v", cmd.Args[1], err, sig)
		}
	case <-time.After(limit):
		t.Fatalf("%s did not stop on %v", cmd.Args[1], sig)
	}
}

// TestBenchCommand runs every scenario at a tiny size: it checks that the
// scenarios work and write docs/benchmarks.md, not how fast they are.
func TestBenchCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	run(t, 0, "bench", "--dir", t.TempDir(), "--out", out,
		"--contacts", "3000", "--tables", "5", "--table-rows", "50", "--changes", "20", "--rate", "50", "--steady-tables", "20",
		"--pg-rows", "20000", "--pg-update", "5000", "--pgbench-time", "3s", "--runs", "2")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if strings.Contains(doc, "failed:") {
		t.Fatalf("a scenario failed:\n%s", doc)
	}
	for _, want := range []string{"Machine:", "initial sync of one big table", "small tables", "Change to SQL latency", "bulk update", "pgbench", "Best of 2 runs each", "Steady state"} {
		if !strings.Contains(doc, want) {
			t.Errorf("benchmarks.md lacks %q:\n%s", want, doc)
		}
	}
}
