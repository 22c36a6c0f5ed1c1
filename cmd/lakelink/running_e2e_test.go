package main

import (
	"encoding/json"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

type statusJSON struct {
	Running bool
	Tables  []struct {
		Name, State, Error string
		Rows, Copied       int64
	}
}

func readStatus(t *testing.T, profile string) statusJSON {
	t.Helper()
	var s statusJSON
	// Exit 1 says some table needs action; the JSON says which.
	out, errs, code := runExit(t, "status", "-c", profile, "--json")
	if code != 0 && code != 1 {
		t.Fatalf("lakelink status: exit %d\n%s%s", code, out, errs)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func waitStatus(t *testing.T, profile, what string, cond func(statusJSON) bool) statusJSON {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := readStatus(t, profile)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tableState(s statusJSON, name string) string {
	state, _ := tableStatus(s, name)
	return state
}

// TestRunningSync follows a long-running sync: throttling shows in its
// status, a table added to the profile is picked up, one removed leaves the
// lake, and SIGTERM stops it cleanly.
func TestRunningSync(t *testing.T) {
	emu, url := emulatortest.Start(t, emulator.Config{Dir: t.TempDir(), Scale: 200, Seed: 3})
	dir := t.TempDir()
	profile := writeProfile(t, dir, url, "  - name: contact\n  - name: account\n")
	cmd := exec.Command(binary, "sync", "-c", profile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	allCompleted(t, profile, []string{"contact", "account"})

	// Every request throttled: the status says so; lifting it recovers.
	emu.SetFaults(emulator.Faults{ThrottleRate: 1, RetryAfter: time.Second})
	waitStatus(t, profile, "Throttled", func(s statusJSON) bool { return tableState(s, "contact") == "Throttled" })
	emu.SetFaults(emulator.Faults{})
	waitStatus(t, profile, "recovery", func(s statusJSON) bool { return tableState(s, "contact") == "Completed" })

	// The profile changes under the running sync.
	writeProfile(t, dir, url, "  - name: contact\n  - name: opportunity\n    partition: month\n")
	s := waitStatus(t, profile, "opportunity added and account removed", func(s statusJSON) bool {
		return tableState(s, "opportunity") == "Completed" && tableState(s, "account") == ""
	})
	if len(s.Tables) != 2 {
		t.Fatalf("tables after the edit: %+v", s.Tables)
	}
	assertSameRows(t, url, profile, "opportunity", "opportunities", "opportunityid")

	// SIGTERM: exit 0, and status says the sync is not running.
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
	if s := readStatus(t, profile); s.Running {
		t.Fatal("status says the sync still runs after it stopped")
	}
}
