package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// TestTwoWriters (issue #15, case 13): a second `lakelink sync` on a lake
// that one is writing refuses at once, naming the first (host, pid, since)
// and leaving the lake alone; once the first is killed with SIGKILL, a new
// sync on the same machine takes over at once (the dead pid proves the
// lease stale), and the lake still equals the source.
func TestTwoWriters(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Scale: 100, Seed: 5})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, "  - name: contact\n")
	first := exec.Command(binary, "sync", "-c", profile)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	waitStatus(t, profile, "contact Completed", func(s statusJSON) bool {
		return s.Running && tableState(s, "contact") == "Completed"
	})

	var stderr bytes.Buffer
	second := exec.Command(binary, "sync", "-c", profile, "--once")
	second.Stderr = &stderr
	start := time.Now()
	err := second.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("second sync: %v, want exit 1\n%s", err, stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the second sync took %s to refuse", d)
	}
	for _, want := range []string{"another lakelink sync writes this lake", fmt.Sprintf("pid %d", first.Process.Pid), "since"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("second sync's message lacks %q:\n%s", want, stderr.String())
		}
	}
	if s := readStatus(t, profile); !s.Running || tableState(s, "contact") != "Completed" {
		t.Errorf("the first sync's status after the refusal: %+v", s)
	}

	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	run(t, 0, "sync", "-c", profile, "--once")
	assertSameRows(t, url, profile, "contact", "contacts", "contactid")
}
