package emulatortest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/tools/emulator"
)

func TestStart(t *testing.T) {
	_, url := Start(t, emulator.Config{Scale: 2, Seed: 1})
	resp, err := http.Get(url + "/api/data/v9.2/WhoAmI")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("WhoAmI: %d", resp.StatusCode)
	}
}

// TestServerRestart checks that a stopped server refuses connections and
// that a restarted one serves the same data on the same URL.
func TestServerRestart(t *testing.T) {
	s := StartServer(t, emulator.Config{Scale: 2, Seed: 1})
	count := func() (string, error) {
		resp, err := http.Get(s.URL + "/api/data/v9.2/accounts/$count")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/data/v9.2/accounts", strings.NewReader(`{"name":"kept"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n, err := count(); err != nil || n != "3" {
		t.Fatalf("count before the stop: %q, %v", n, err)
	}
	s.Stop()
	if s.Emulator() != nil {
		t.Fatal("a stopped server still has an emulator")
	}
	if _, err := count(); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Restart()
	if n, err := count(); err != nil || n != "3" {
		t.Fatalf("count after the restart: %q, %v (want the created row kept)", n, err)
	}
}
