package engine

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestWaitStates: the source's retries show as the table's own state,
// Throttled for a 429 and SourceUnreachable otherwise, each with its error,
// since when and what to do, and both end when reads go through (#15 case 12).
func TestWaitStates(t *testing.T) {
	src := newFake("account", "contact")
	seed(src, 3, "account", "contact")
	h := start(t, src, t.TempDir(), Config{Tables: specs("account", "contact")})
	h.converged("account", "contact")
	for _, tc := range []struct {
		report func(table, reason string)
		want   State
	}{
		{h.eng.Throttled, Throttled},
		{h.eng.Unreachable, SourceUnreachable},
	} {
		before := time.Now()
		tc.report("account", "GET accounts: connection refused")
		got := statusOf(h.eng.Status(), "account")
		if got.State != tc.want || got.Error != "GET accounts: connection refused" || got.Since.Before(before) || got.Action == "" {
			t.Errorf("after %s: status %+v", tc.want, got)
		}
		if other := statusOf(h.eng.Status(), "contact"); other.State != Completed {
			t.Errorf("after %s of account, contact is %s", tc.want, other.State)
		}
		h.eng.Unthrottled("account")
		if got := statusOf(h.eng.Status(), "account"); got.State != Completed || got.Error != "" || got.Action != "" {
			t.Errorf("after %s ended: status %+v", tc.want, got)
		}
	}
}

func statusOf(ts []TableStatus, name string) TableStatus {
	for _, s := range ts {
		if s.Name == name {
			return s
		}
	}
	return TableStatus{}
}

// TestReportNeedsAction: the exit code of lakelink status follows the
// states that wait for someone.
func TestReportNeedsAction(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
		want bool
	}{
		{"healthy", Report{Tables: []TableStatus{{State: Completed}, {State: InProgress}, {State: Reinitialising}, {State: Throttled}, {State: NotStarted}}}, false},
		{"failed", Report{Tables: []TableStatus{{State: Completed}, {State: Failed}}}, true},
		{"paused", Report{Tables: []TableStatus{{State: Paused}}}, true},
		{"source", Report{Tables: []TableStatus{{State: SourceUnreachable}}}, true},
		{"lake", Report{Tables: []TableStatus{{State: LakeUnwritable}}}, true},
		{"maintenance", Report{Maintenance: &Problem{Error: "no space left on device"}}, true},
		{"slot", Report{Source: &SourceStatus{Error: "connection refused"}}, true},
		{"wal", Report{Source: &SourceStatus{Warning: "retains"}}, true},
	} {
		if got := tc.r.NeedsAction(); got != tc.want {
			t.Errorf("%s: NeedsAction %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDamagedLiveStatus: a live status that cannot be parsed is a warning;
// every table of the lake is still listed.
func TestDamagedLiveStatus(t *testing.T) {
	src := newFake("account")
	seed(src, 3, "account")
	h := start(t, src, t.TempDir(), Config{Tables: specs("account")})
	h.converged("account")
	h.stop()
	w, err := h.st.Create(context.Background(), statusObject)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(`{"updated": garbage`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := ReadReport(context.Background(), h.st, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tables) != 1 || r.Tables[0].State != Completed || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "damaged") {
		t.Errorf("report %+v", r)
	}
}
