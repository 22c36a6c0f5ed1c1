package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// TestQueryQuiet (issue #9, section 4): `lakelink query` prints its result
// and nothing else, even when its Parquet cache files are garbage (they are
// rebuilt from the lake); --verbose is what shows the log lines.
func TestQueryQuiet(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 50, Seed: 9})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, "  - name: contact\n")
	run(t, 0, "sync", "-c", profile, "--once")
	cache := t.TempDir()
	query := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"query", "-c", profile, "--format", "csv"}, args...)...)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("query: %v\n%s", err, errb.String())
		}
		return out.String(), errb.String()
	}
	const q = "SELECT count(*) FROM contact"
	want, _ := query(q)
	// Let the background cache convert the files, then damage them all.
	var files []string
	for range 20 {
		query(q)
		files, _ = filepath.Glob(filepath.Join(cache, "*", "*", "*.parquet"))
		if len(files) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(files) == 0 {
		files, _ = filepath.Glob(filepath.Join(cache, "**", "*.parquet"))
	}
	for _, f := range files {
		os.WriteFile(f, []byte("not parquet"), 0o644)
	}
	t.Logf("%d cache files damaged", len(files))
	got, stderr := query(q)
	if got != want || stderr != "" {
		t.Errorf("query with a damaged cache: %q, stderr %q; want %q and nothing on stderr", got, stderr, want)
	}
	if !strings.HasSuffix(got, "\n") || strings.Contains(got, "\r") {
		t.Errorf("csv lines must end in LF: %q", got)
	}
}
