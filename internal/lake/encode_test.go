package lake

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// TestEncodeChangesParallel checks that encoding a batch in parallel
// segments gives the bytes, row boundaries and first error of a sequential
// encoding.
func TestEncodeChangesParallel(t *testing.T) {
	cols, err := newLayout(accountSchema())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	n := 3*minSegmentRows + 7
	batch := func(bad ...int) []source.Change {
		chs := make([]source.Change, n)
		for i := range chs {
			created := time.Date(2019+i%4, time.Month(1+i%12), 1, 0, 0, 0, 0, time.UTC)
			if i%97 == 0 {
				chs[i] = del("account", i, 2)
				continue
			}
			chs[i] = account(i, 1, "name", created)
		}
		for _, b := range bad {
			setValue(&chs[b], "statecode", "not a number")
		}
		return chs
	}
	for _, tc := range []struct {
		name  string
		phase Phase
		bad   []int
	}{
		{"copy", InProgress, nil},
		{"changes", Completed, nil},
		{"error in a late segment", InProgress, []int{n - 3}},
		{"first of two errors", InProgress, []int{minSegmentRows + 5, n - 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := &TableState{Name: "account", Source: accountSchema(), Columns: cols, Phase: tc.phase, Options: TableOptions{Granularity: Year}}
			chs := batch(tc.bad...)
			want := &encoded{parts: map[string]*partBuf{}, change: &partBuf{}}
			wantErr := encodeSegment(ts, newRowEncoder(ts.Name, cols, now), chs, want)
			got, gotErr := encodeChanges(ts, chs, now)
			defer got.recycle()
			if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
				t.Fatalf("error %v, want %v", gotErr, wantErr)
			}
			if (wantErr != nil) != (len(tc.bad) > 0) {
				t.Fatalf("sequential encoding: error %v with bad rows %v", wantErr, tc.bad)
			}
			if wantErr != nil {
				return
			}
			if got.upserts != want.upserts {
				t.Errorf("upserts %d, want %d", got.upserts, want.upserts)
			}
			same := func(what string, g, w *partBuf) {
				if !bytes.Equal(g.data, w.data) || !slices.Equal(g.ends, w.ends) {
					t.Errorf("%s: %d bytes in %d rows, want %d bytes in %d rows", what, len(g.data), len(g.ends), len(w.data), len(w.ends))
				}
			}
			same("change file", got.change, want.change)
			if g, w := slices.Sorted(maps.Keys(got.parts)), slices.Sorted(maps.Keys(want.parts)); !slices.Equal(g, w) {
				t.Fatalf("partitions %v, want %v", g, w)
			}
			for p, w := range want.parts {
				same("partition "+p, got.parts[p], w)
			}
		})
	}
}
