package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// TestQueryReadOnly (issue #15, case 16): while sync runs, `lakelink query`
// refuses each statement that could damage the lake or leave it (a COPY
// into the commit log, a read of /etc/passwd, ATTACH, INSTALL, SET, two
// statements), exits 1 with a message naming what is refused, writes
// nothing, and the running sync keeps committing.
func TestQueryReadOnly(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 50, Seed: 16})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, "  - name: contact\n")
	startSync(t, profile)
	countIs(t, profile, "contact", 50)

	logDir := filepath.Join(dir, "lake", "_lakelink", "log")
	logs, err := filepath.Glob(filepath.Join(logDir, "*.json"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no commit log in %s: %v", logDir, err)
	}
	last, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(logs[len(logs)-1]), ".json"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The commit after the newest: sync may take it meanwhile, so several.
	var next []string
	for n := last + 1; n < last+50; n++ {
		next = append(next, filepath.Join(logDir, fmt.Sprintf("%020d.json", n)))
	}
	// What the attacks write; commit records have a "garbage" field.
	const marker = "not-a-commit"
	for _, c := range []struct{ sql, want string }{
		{"COPY (SELECT '" + marker + "') TO '" + next[0] + "' (FORMAT csv, HEADER false)", "COPY is not allowed"},
		{"COPY (SELECT '" + marker + "') TO '" + next[1] + "'; SELECT 1", "more than one statement is not allowed"},
		{"SELECT * FROM read_csv('/etc/passwd')", "reads only the lake"},
		{"ATTACH '" + next[2] + "' AS x", "ATTACH is not allowed"},
		{"INSTALL httpfs", "INSTALL is not allowed"},
		{"SET enable_external_access = true", "SET is not allowed"},
		{"SELECT count(*) FROM contact; SELECT 2", "more than one statement (2) is not allowed"},
	} {
		cmd := exec.Command(binary, "query", "-c", profile, c.sql)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errb.String(), c.want) || out.Len() != 0 {
			t.Errorf("lakelink query %q: %v\nstdout %q\nstderr %q\nwant exit 1 and %q", c.sql, err, out.String(), errb.String(), c.want)
		}
	}
	for _, p := range next[:3] {
		// A file the sync wrote itself is a valid commit; one of the
		// attack would not decode.
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), marker) {
			t.Errorf("%s was written by the query: %q", p, b)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
	}
	c := &demo.Client{URL: url}
	if _, err := c.Create(t.Context(), "contacts", map[string]any{"lastname": "after the attacks"}); err != nil {
		t.Fatal(err)
	}
	countIs(t, profile, "contact", 51)
}
