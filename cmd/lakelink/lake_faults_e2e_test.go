package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// Issue 15 case 19, lake part: a running `lakelink sync` rides out a lake
// that refuses writes, shows it in status, and loses nothing.

// mount runs mount(8) with args; the tests run as root.
func mount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestLakeReadOnly makes the lake folder read-only (a read-only bind mount
// over it: root ignores permission bits) under a running sync for less
// than the writer lease's TTL: status shows LakeUnwritable with the error
// and since when while the sync retries, query still reads, and once the
// folder is writable again the changes made meanwhile arrive, the tables
// are Completed and the lake equals the source.
func TestLakeReadOnly(t *testing.T) {
	const readOnlyFor = 10 * time.Second
	srv := emulatortest.StartServer(t, emulator.Config{Scale: 200, Seed: 7})
	dir := t.TempDir()
	profile := writeProfile(t, dir, srv.URL, "  - name: contact\n  - name: account\n")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"contact", "account"})
	account, contact := faultTargets(t, srv.URL)

	lakeDir := filepath.Join(dir, "lake")
	mount(t, "--bind", lakeDir, lakeDir)
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if out, err := exec.Command("umount", lakeDir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", lakeDir, err, out)
			}
		}
	}
	t.Cleanup(unmount)
	// The remount is refused while the sync has a file open for writing
	// (a commit in flight): tried until it passes.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := exec.Command("mount", "-o", "remount,bind,ro", lakeDir).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remount %s read-only: %v\n%s", lakeDir, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readOnly := time.Now()
	const label = "while read-only"
	sourceChanges(t, srv.URL, label, account, contact)
	s := waitStatus(t, profile, "LakeUnwritable", func(s statusJSON) bool {
		st, msg := tableStatus(s, "contact")
		return st == "LakeUnwritable" && strings.Contains(msg, "read-only file system")
	})
	if !s.Running {
		t.Errorf("status says the sync is not running while the lake is read-only: %+v", s)
	}
	out, _, code := runExit(t, "status", "-c", profile)
	if code != 1 || !strings.Contains(out, "LakeUnwritable since ") || !strings.Contains(out, "action: make the lake folder writable") {
		t.Errorf("status exit %d, want 1 with the state, since when and the action:\n%s", code, out)
	}
	if n := queryCSV(t, profile, "SELECT count(*) FROM account")[0][0]; n == "0" {
		t.Errorf("query of a read-only lake counts %s accounts", n)
	}
	time.Sleep(time.Until(readOnly.Add(readOnlyFor)))
	alive(t, cmd, errb)

	unmount()
	took := changesArrived(t, profile, label, account, contact, time.Minute)
	t.Logf("changes made while the lake was read-only for %v arrived %v after it was writable again", readOnlyFor, took.Round(100*time.Millisecond))
	waitStatus(t, profile, "both tables Completed again", func(s statusJSON) bool {
		return tableState(s, "contact") == "Completed" && tableState(s, "account") == "Completed"
	})
	if _, _, code := runExit(t, "status", "-c", profile); code != 0 {
		t.Errorf("status exits %d once the lake is writable again, want 0", code)
	}
	alive(t, cmd, errb)
	assertSameRows(t, srv.URL, profile, "contact", "contacts", "contactid")
	assertSameRows(t, srv.URL, profile, "account", "accounts", "accountid")
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// TestLakeDiskFull runs the lake on a small tmpfs and fills it under a
// running sync: status shows LakeUnwritable with "no space left on
// device" while the sync retries (maintenance backs off too, see
// TestMaintainBackoff), query still reads, and once space is freed the
// changes made meanwhile arrive and the lake equals the source.
func TestLakeDiskFull(t *testing.T) {
	srv := emulatortest.StartServer(t, emulator.Config{Scale: 200, Seed: 8})
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	if err := os.Mkdir(lakeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "-t", "tmpfs", "-o", "size=8m", "tmpfs", lakeDir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", lakeDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", lakeDir, err, out)
		}
	})
	profile := writeProfile(t, dir, srv.URL, "  - name: contact\n  - name: account\n")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"contact", "account"})
	account, contact := faultTargets(t, srv.URL)

	// The filler takes every free block of the tmpfs.
	filler := filepath.Join(lakeDir, "filler.bin")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	f.Close()
	const label = "while full"
	sourceChanges(t, srv.URL, label, account, contact)
	waitStatus(t, profile, "LakeUnwritable", func(s statusJSON) bool {
		st, msg := tableStatus(s, "contact")
		return st == "LakeUnwritable" && strings.Contains(msg, "no space left on device")
	})
	if out, _, code := runExit(t, "status", "-c", profile); code != 1 || !strings.Contains(out, "free space") {
		t.Errorf("status exit %d, want 1 with the action:\n%s", code, out)
	}
	if n := queryCSV(t, profile, "SELECT count(*) FROM account")[0][0]; n == "0" {
		t.Errorf("query of a full lake counts %s accounts", n)
	}
	time.Sleep(3 * time.Second)
	alive(t, cmd, errb)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	took := changesArrived(t, profile, label, account, contact, time.Minute)
	t.Logf("changes made while the lake was full arrived %v after space was freed", took.Round(100*time.Millisecond))
	waitStatus(t, profile, "both tables Completed again", func(s statusJSON) bool {
		return tableState(s, "contact") == "Completed" && tableState(s, "account") == "Completed"
	})
	alive(t, cmd, errb)
	assertSameRows(t, srv.URL, profile, "contact", "contacts", "contactid")
	assertSameRows(t, srv.URL, profile, "account", "accounts", "accountid")
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}
