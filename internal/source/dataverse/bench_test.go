package dataverse

import (
	"context"
	"testing"

	"github.com/lakelink/lakelink/internal/emulator"
	"github.com/lakelink/lakelink/internal/emulator/emulatortest"
	"github.com/lakelink/lakelink/internal/source"
)

// BenchmarkCopy compares Copy with the benchmark floor, RawPageThrough,
// over the emulator's contacts (go test -bench Copy -benchtime 3x).
func BenchmarkCopy(b *testing.B) {
	const rows = 100_000
	_, url := emulatortest.Start(b, emulator.Config{Seed: 1, Counts: map[string]int{"contact": rows}})
	s := open(b, url, func(c *Config) { c.PageSize = 5000; c.RequestsPerSecond = 1e6 })
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			n, err := RawPageThrough(context.Background(), url, "contacts", 5000, nil)
			if err != nil || n != rows {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			n := 0
			err := s.Copy(context.Background(), "contact", "", func(_ context.Context, bt source.Batch) error {
				n += len(bt.Changes)
				return nil
			})
			if err != nil || n != rows {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
