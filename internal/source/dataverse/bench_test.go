package dataverse

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/bench/dvfloor"
	"github.com/lakelink/lakelink/internal/tools/emulator"
	"github.com/lakelink/lakelink/internal/tools/emulator/emulatortest"
)

// BenchmarkCopy compares Copy with the benchmark floor, dvfloor.RawPageThrough,
// over the emulator's contacts (go test -bench Copy -benchtime 3x).
func BenchmarkCopy(b *testing.B) {
	const rows = 100_000
	_, url := emulatortest.Start(b, emulator.Config{Seed: 1, Counts: map[string]int{"contact": rows}})
	s := open(b, url, func(c *Config) { c.PageSize = 5000; c.RequestsPerSecond = 1e6 })
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			n, err := dvfloor.RawPageThrough(context.Background(), url, "contacts", 5000, nil)
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

// BenchmarkDecodePage measures page decoding alone, on a page of 5000
// emulator contacts held in memory.
func BenchmarkDecodePage(b *testing.B) {
	_, url := emulatortest.Start(b, emulator.Config{Seed: 1, Counts: map[string]int{"contact": 5000}})
	s := open(b, url, func(c *Config) { c.PageSize = 5000 })
	l, err := s.layout(context.Background(), "contact")
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	err = s.c.get(context.Background(), "contact", url+l.firstLink(), s.prefer(), func(r io.Reader) error {
		body, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []struct {
		name   string
		decode func(io.Reader, *layout, int64) (*page, error)
	}{{"scanner", decodePage}, {"encoding-json", decodePageSlow}} {
		b.Run(path.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				p, err := path.decode(bytes.NewReader(body), l, 1)
				if err != nil || len(p.changes) != 5000 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
