package emulatortest

import (
	"net/http"
	"testing"

	"github.com/lakelink/lakelink/internal/emulator"
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
