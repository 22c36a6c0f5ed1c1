// Package emulatortest starts a Dataverse emulator for other packages'
// tests: one call gives a running emulator on a test HTTP server, closed
// when the test ends. It lives apart from package emulator so that the
// emulator does not import testing.
package emulatortest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/lakelink/lakelink/internal/emulator"
)

// Start opens an emulator with cfg (Dir defaults to a fresh temporary
// directory) behind an httptest server and returns it with the server's
// URL (the organization URL: the Web API is under URL+"/api/data/v9.2/").
// Server and emulator close on t.Cleanup; a failure to start fails t.
func Start(t testing.TB, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	e, err := emulator.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("emulatortest: start emulator: %v", err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := e.Close(); err != nil {
			t.Errorf("emulatortest: close emulator: %v", err)
		}
	})
	return e, srv.URL
}
