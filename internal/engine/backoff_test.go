package engine

import (
	"testing"
	"time"
)

// TestMaintainBackoff is issue 15 case 18: failed maintenance rounds wait
// twice as long each time, up to 30 s, and a success goes back to every.
func TestMaintainBackoff(t *testing.T) {
	every := time.Second
	for _, c := range []struct {
		wait   time.Duration
		failed bool
		want   time.Duration
	}{
		{every, true, 2 * time.Second},
		{2 * time.Second, true, 4 * time.Second},
		{16 * time.Second, true, 30 * time.Second},
		{30 * time.Second, true, 30 * time.Second},
		{30 * time.Second, false, every},
	} {
		if got := maintainBackoff(c.wait, every, c.failed); got != c.want {
			t.Errorf("maintainBackoff(%v, failed=%v) = %v, want %v", c.wait, c.failed, got, c.want)
		}
	}
}
