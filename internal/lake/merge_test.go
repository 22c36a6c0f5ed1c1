package lake

import (
	"testing"
	"time"
)

// TestMergeable checks which partition files small-file merging takes:
// files of the initial copy only when they hold tiny batches.
func TestMergeable(t *testing.T) {
	l := newCSVFormat(Options{MaxFileRows: 640_000}.withDefaults())
	copied := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	before, after := copied.Add(-time.Minute), copied.Add(time.Minute)
	for _, tc := range []struct {
		name      string
		completed time.Time
		file      File
		crowded   bool
		want      bool
	}{
		{"copy running, batch-sized file", time.Time{}, File{Rows: 10_000, Bytes: 1 << 20, Written: before}, false, false},
		{"copy running, tiny batch", time.Time{}, File{Rows: 9_999, Bytes: 1 << 20, Written: before}, false, true},
		{"copy done, its batch-sized file", copied, File{Rows: 10_000, Bytes: 1 << 20, Written: before}, false, false},
		{"copy done, file of its last commit", copied, File{Rows: 10_000, Bytes: 1 << 20, Written: copied}, false, false},
		{"copy done, large bytes", copied, File{Rows: 100, Bytes: int64(maxFileBytes / 64), Written: before}, false, false},
		{"after the copy, small file", copied, File{Rows: 10_000, Bytes: 1 << 20, Written: after}, false, true},
		{"after the copy, not small", copied, File{Rows: 80_000, Bytes: 1 << 20, Written: after}, false, false},
		{"copy running, crowded partition", time.Time{}, File{Rows: 10_000, Bytes: 1 << 20, Written: before}, true, true},
		{"copy done, crowded partition", copied, File{Rows: 10_000, Bytes: 1 << 20, Written: before}, true, true},
		{"crowded partition, not small", copied, File{Rows: 80_000, Bytes: 1 << 20, Written: before}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := &TableState{Name: "orders", InitialSyncCompleted: tc.completed}
			if got := l.mergeable(ts, tc.file, tc.crowded); got != tc.want {
				t.Errorf("mergeable = %v, want %v", got, tc.want)
			}
		})
	}
}
