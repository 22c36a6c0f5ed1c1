package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/demo"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// Issue 15 case 19, Dataverse part: a running `lakelink sync` rides out
// the environment going away and sustained throttling, loses nothing and
// re-copies nothing.

// faultTargets picks, from the running source, the account and the
// contact that sourceChanges updates and deletes; they are picked before a
// fault so that no full read of the source is needed after it.
func faultTargets(t *testing.T, url string) (account, contact string) {
	t.Helper()
	accounts := sourceRows(t, url, "accounts", "accountid")
	contacts := sourceRows(t, url, "contacts", "contactid")
	account, _, _ = strings.Cut(accounts[len(accounts)/2], "/")
	contact, _, _ = strings.Cut(contacts[0], "/")
	return account, contact
}

// sourceChanges creates a contact, renames account and deletes contact
// through the Web API: the kinds of change a sync must bring across
// after a fault.
func sourceChanges(t *testing.T, url, label, account, contact string) {
	t.Helper()
	ctx := context.Background()
	c := &demo.Client{URL: url}
	if _, err := c.Create(ctx, "contacts", map[string]any{"lastname": label}); err != nil {
		t.Fatalf("create a contact: %v", err)
	}
	if err := c.Update(ctx, "accounts", account, map[string]any{"name": label}); err != nil {
		t.Fatalf("update account %s: %v", account, err)
	}
	if err := c.Delete(ctx, "contacts", contact); err != nil {
		t.Fatalf("delete contact %s: %v", contact, err)
	}
}

// changesArrived waits until the lake shows the three changes of
// sourceChanges, reading the lake only, and returns how long that took.
func changesArrived(t *testing.T, profile, label, account, contact string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	sql := fmt.Sprintf(`SELECT (SELECT count(*) FROM contact WHERE lastname = '%[1]s'),
		(SELECT count(*) FROM account WHERE Id = '%[2]s' AND name = '%[1]s'),
		(SELECT count(*) FROM contact WHERE Id = '%[3]s')`, label, account, contact)
	for {
		r := queryCSV(t, profile, sql)[0]
		if r[0] == "1" && r[1] == "1" && r[2] == "0" {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("changes not in the lake %v after they were made: created contact %s, renamed account %s, deleted contact still there %s", limit, r[0], r[1], r[2])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unreachableState is what status shows for a table whose source cannot
// be reached.
const unreachableState = "SourceUnreachable"

// TestDataverseUnreachable stops the emulator under a running sync for
// unreachableFor and starts it again on the same address with the same
// data: the sync keeps running, status says the source cannot be
// reached, the changes made after the restart arrive, and no table is
// copied again (the restarted emulator serves only a few rows to the
// sync).
func TestDataverseUnreachable(t *testing.T) {
	const unreachableFor = 12 * time.Second
	srv := emulatortest.StartServer(t, emulator.Config{Scale: 200, Seed: 5})
	profile := writeProfile(t, t.TempDir(), srv.URL, "  - name: contact\n  - name: account\n")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"contact", "account"})
	account, contact := faultTargets(t, srv.URL)

	srv.Stop()
	stopped := time.Now()
	s := waitStatus(t, profile, "the source shown unreachable", func(s statusJSON) bool {
		// The message is the first failed attempt's: "connection refused",
		// or a reset or EOF when a request was in flight at the stop.
		st, msg := tableStatus(s, "contact")
		return st == unreachableState && strings.Contains(msg, "dataverse table contact: GET ")
	})
	if !s.Running {
		t.Fatalf("status says the sync is not running while the source is down: %+v", s)
	}
	time.Sleep(time.Until(stopped.Add(unreachableFor)))
	alive(t, cmd, errb)

	srv.Restart()
	const label = "after the restart"
	sourceChanges(t, srv.URL, label, account, contact)
	took := changesArrived(t, profile, label, account, contact, time.Minute)
	t.Logf("changes made after a %v outage reached the lake %v after the restart", unreachableFor, took.Round(100*time.Millisecond))
	waitStatus(t, profile, "both tables Completed again", func(s statusJSON) bool {
		return tableState(s, "contact") == "Completed" && tableState(s, "account") == "Completed"
	})
	// A re-copy would read at least a table's 200 rows again.
	if st := srv.Emulator().Stats(); st.RowsServed > 20 {
		t.Fatalf("the restarted emulator served %d rows for 3 changes: a table was copied again (stats %+v)\n%s", st.RowsServed, st, errb.String())
	}
	alive(t, cmd, errb)
	assertSameRows(t, srv.URL, profile, "contact", "contacts", "contactid")
	assertSameRows(t, srv.URL, profile, "account", "accounts", "accountid")
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}

// TestDataverseThrottled answers every request 429 with Retry-After for
// throttleFor: the sync waits as told (no more attempts than Retry-After
// allows), status shows Throttled with the service's message, and when
// the throttling ends the changes made during it arrive and the tables
// are Completed again, none copied afresh.
func TestDataverseThrottled(t *testing.T) {
	const (
		retryAfter  = 5 * time.Second
		throttleFor = 16 * time.Second
	)
	srv := emulatortest.StartServer(t, emulator.Config{Scale: 200, Seed: 6})
	profile := writeProfile(t, t.TempDir(), srv.URL, "  - name: contact\n  - name: account\n")
	cmd, errb := startSync(t, profile)
	allCompleted(t, profile, []string{"contact", "account"})
	account, contact := faultTargets(t, srv.URL)
	emu := srv.Emulator()
	// The changes are made just before the throttling starts (faults
	// refuse writes too), so the sync has them to fetch all through it.
	const label = "during the throttling"
	sourceChanges(t, srv.URL, label, account, contact)
	before := emu.Stats()
	emu.SetFaults(emulator.Faults{ThrottleRate: 1, RetryAfter: retryAfter})
	start := time.Now()
	waitStatus(t, profile, "Throttled", func(s statusJSON) bool {
		st, msg := tableStatus(s, "contact")
		return st == "Throttled" && strings.Contains(msg, "429")
	})
	time.Sleep(time.Until(start.Add(throttleFor)))
	alive(t, cmd, errb)
	during := emu.Stats()
	emu.SetFaults(emulator.Faults{})
	elapsed := time.Since(start)

	// Each table's reader waits Retry-After between attempts: at most
	// elapsed/retryAfter + 1 attempts each, and one more for a request
	// that was in flight. A reader that ignored Retry-After would back off
	// from 250 ms and make about twice as many.
	throttled := during.Throttled - before.Throttled
	limit := int64(2 * (int(elapsed/retryAfter) + 2))
	t.Logf("%d requests answered 429 in %v with Retry-After %v (limit %d)", throttled, elapsed.Round(time.Second), retryAfter, limit)
	if throttled == 0 || throttled > limit {
		t.Fatalf("%d requests throttled in %v with Retry-After %v: the sync does not wait as told (at most %d expected)", throttled, elapsed, retryAfter, limit)
	}

	took := changesArrived(t, profile, label, account, contact, time.Minute)
	t.Logf("changes made during the throttling reached the lake %v after it ended", took.Round(100*time.Millisecond))
	waitStatus(t, profile, "both tables Completed after the throttling", func(s statusJSON) bool {
		return tableState(s, "contact") == "Completed" && tableState(s, "account") == "Completed"
	})
	if st := emu.Stats(); st.RowsServed-before.RowsServed > 20 {
		t.Fatalf("the sync read %d rows for 3 changes: a table was copied again", st.RowsServed-before.RowsServed)
	}
	assertSameRows(t, srv.URL, profile, "contact", "contacts", "contactid")
	assertSameRows(t, srv.URL, profile, "account", "accounts", "accountid")
	stopCleanly(t, cmd, syscall.SIGTERM, 20*time.Second)
}
