package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// faultsJSON is Faults on the admin endpoint: durations as Go duration
// strings ("1.5s"), so curl users can write them.
type faultsJSON struct {
	ThrottleRate float64 `json:"throttle_rate"`
	RetryAfter   string  `json:"retry_after"`
	ErrorRate    float64 `json:"error_rate"`
	Latency      string  `json:"latency"`
	TokenMaxAge  string  `json:"token_max_age"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{f.ThrottleRate, f.RetryAfter.String(), f.ErrorRate, f.Latency.String(), f.TokenMaxAge.String()})
}

// UnmarshalJSON reads durations as Go duration strings; absent ones are 0.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	out := Faults{ThrottleRate: j.ThrottleRate, ErrorRate: j.ErrorRate}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"retry_after", j.RetryAfter, &out.RetryAfter}, {"latency", j.Latency, &out.Latency}, {"token_max_age", j.TokenMaxAge, &out.TokenMaxAge}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	if out.ThrottleRate < 0 || out.ThrottleRate > 1 || out.ErrorRate < 0 || out.ErrorRate > 1 {
		return fmt.Errorf("throttle_rate and error_rate are fractions between 0 and 1")
	}
	*f = out
	return nil
}

func (e *Emulator) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.currentFaults())
}

func (e *Emulator) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error() +
			`; send {"throttle_rate":0.1,"retry_after":"1s","error_rate":0,"latency":"0s","token_max_age":"0s"}`})
		return
	}
	e.SetFaults(f)
	e.log.Info("emulator: faults changed", "faults", f)
	writeJSON(w, http.StatusOK, f)
}

// Stats counts what the emulator answered since it started.
type Stats struct {
	Requests     int64 `json:"requests"`
	Throttled    int64 `json:"throttled"`
	Failed       int64 `json:"failed"`
	Unauthorized int64 `json:"unauthorized"`
	Reads        int64 `json:"reads"`
	Writes       int64 `json:"writes"`
	RowsServed   int64 `json:"rows_served"`
}

// Stats returns the request counters.
func (e *Emulator) Stats() Stats {
	s := &e.stats
	return Stats{s.requests.Load(), s.throttled.Load(), s.failed.Load(), s.unauthorized.Load(), s.reads.Load(), s.writes.Load(), s.rows.Load()}
}

func (e *Emulator) getStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.Stats())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
