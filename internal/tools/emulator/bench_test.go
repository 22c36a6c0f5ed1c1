package emulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkFirstPage measures the server side of a 5000-row first-read
// page of contacts (generated rows), without HTTP or client decoding.
func BenchmarkFirstPage(b *testing.B) {
	v := start(b, Config{Scale: 1, Counts: map[string]int{"contact": 5000}})
	h := v.e.Handler()
	req := httptest.NewRequest(http.MethodGet, apiPrefix+"contacts", nil)
	req.Header.Set("Prefer", "odata.track-changes, odata.maxpagesize=5000")
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkUpdate measures one PATCH of a contact.
func BenchmarkUpdate(b *testing.B) {
	v := start(b, Config{Scale: 100})
	h := v.e.Handler()
	id := seqID(v.e.layout["contact"].Base, 7).String()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPatch, apiPrefix+"contacts("+id+")", strings.NewReader(`{"jobtitle":"CTO"}`)))
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
