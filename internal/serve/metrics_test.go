package serve

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/tools/demo"
)

// TestMetrics: /metrics has each table's rows, lag and state, the changes
// committed, the commit latency, the source's calls and the process's
// metrics; the history has the change rate.
func TestMetrics(t *testing.T) {
	h := startHarness(t, Options{})
	h.call("POST", "/api/v1/links", h.profile("sales", "account"), http.StatusCreated, nil)
	h.waitTables("sales", "Completed", allCompleted("account"))
	c := &demo.Client{URL: h.emuURL}
	if _, err := c.Create(context.Background(), "accounts", map[string]any{"name": "Metrics"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`lakelink_link_up{link="sales"} 1`,
		`lakelink_table_rows{link="sales",table="account"} 21`,
		`lakelink_table_lag_seconds{link="sales",table="account"}`,
		`lakelink_table_state{link="sales",state="Completed",table="account"} 1`,
		`lakelink_changes_applied_total{link="sales",table="account"} 21`,
		`lakelink_commit_seconds_bucket{kind="stream",link="sales",le="+Inf"}`,
		`lakelink_commit_seconds_count{kind="copy",link="sales"}`,
		`lakelink_source_requests_total{call="copy",link="sales"} 1`,
		`lakelink_batches_committed_total{kind="stream",link="sales"}`,
		"process_cpu_seconds_total",
		"go_goroutines",
	}
	deadline := time.Now().Add(30 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		_, b := h.do("GET", "/metrics", nil)
		text = string(b)
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(text, w)
		}
		if !missing {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	h.s.history.take(h.s, time.Now())
	var hist History
	h.call("GET", "/api/v1/links/sales/history", nil, http.StatusOK, &hist)
	if len(hist.Samples) == 0 {
		t.Fatalf("history: %+v", hist)
	}
}
