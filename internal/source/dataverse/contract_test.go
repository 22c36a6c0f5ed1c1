package dataverse

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/source/sourcetest"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// TestContract runs package source's contract suite against the emulator:
// a fresh environment per subtest, accounts read in pages of 3.
func TestContract(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Env {
		const rows = 10
		e, url := emulatortest.Start(t, emulator.Config{Seed: 1, Counts: map[string]int{"account": rows}})
		var n atomic.Int64
		return &sourcetest.Env{
			Open: func(t *testing.T) source.Source {
				return open(t, url, nil)
			},
			Table:     "account",
			Rows:      rows,
			Untracked: "competitor",
			Insert: func(t *testing.T) string {
				id := call(t, http.MethodPost, url, "accounts", map[string]any{"name": fmt.Sprintf("contract %d", n.Add(1))})
				return strings.ToLower(id)
			},
			Update: func(t *testing.T, id string) {
				call(t, http.MethodPatch, url, "accounts("+id+")", map[string]any{"name": fmt.Sprintf("updated %d", n.Add(1))})
			},
			Delete: func(t *testing.T, id string) {
				call(t, http.MethodDelete, url, "accounts("+id+")", nil)
			},
			// The environment keeps delta tokens for a while
			// (ExpireChangeTrackingInDays); the emulator's is shortened.
			Expire: func(t *testing.T, _ source.Source) {
				e.SetFaults(emulator.Faults{TokenMaxAge: time.Millisecond})
				time.Sleep(1100 * time.Millisecond) // the emulator stamps tokens to the second
			},
		}
	})
}
