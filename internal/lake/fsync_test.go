package lake

import (
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/store/local"
)

// TestFsyncsPerFolder counts the fsyncs of a table of seven partitions
// (one per year) through its stage, its publication and its first
// snapshot: one per file written, and one per folder (a new folder's entry
// in its parent too) per stage or publication, not one per file (issue
// #16: folder syncs were 6 300 of an initial sync's 10 536 fsyncs).
func TestFsyncsPerFolder(t *testing.T) {
	l, _ := stageLake(t, 100)
	years := []int{2019, 2020, 2021, 2022, 2023, 2024, 2025}
	stage := func(from int) *Stage {
		t.Helper()
		st, err := l.Stage("account")
		if err != nil {
			t.Fatal(err)
		}
		for i, y := range years {
			if err := st.Add(ctxT(t), accounts(from+i, 1, time.Date(y, 2, 1, 0, 0, 0, 0, time.UTC))); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	// The first stage makes the table's data folder.
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Stage: stage(0)}}})

	f := csvOf(l)
	tests := []struct {
		name string
		run  func() error
		want int64
	}{
		// 7 partition files, their folder once.
		{"stage", func() error { return stage(100).finish() }, 8},
		// 7 hard links into the new folder account/, synced once, and
		// its entry in the lake folder.
		{"publish", func() error { return f.publishTable(ctxT(t), "account", l.State().Tables["account"]) }, 2},
		// 7 hard links into the new folder account/Snapshot/, and its
		// entry in account/.
		{"snapshot", func() error {
			_, err := f.takeSnapshot(ctxT(t), l.State().Tables["account"], l.o.Now())
			return err
		}, 2},
	}
	for _, tt := range tests {
		before := local.Stats()
		if err := tt.run(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := local.Stats().Sub(before).Fsyncs; got != tt.want {
			t.Errorf("%s of 7 partition files: %d fsyncs, want %d", tt.name, got, tt.want)
		}
	}
}
