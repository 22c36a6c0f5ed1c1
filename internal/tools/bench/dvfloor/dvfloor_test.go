package dvfloor

import (
	"context"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

func TestRawPageThrough(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{Seed: 1, Counts: map[string]int{"account": 7}})
	tests := []struct {
		name      string
		url       string
		set       string
		pageSize  int
		want      int64
		wantError string
	}{
		{name: "pages of 2", url: url, set: "accounts", pageSize: 2, want: 7},
		{name: "one page", url: url + "/", set: "accounts", pageSize: 5000, want: 7},
		{name: "missing entity set", url: url, set: "nosuch", pageSize: 2, wantError: "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := RawPageThrough(context.Background(), tt.url, tt.set, tt.pageSize, nil)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("RawPageThrough = %d, %v; want an error with %q", n, err, tt.wantError)
				}
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("RawPageThrough = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}
