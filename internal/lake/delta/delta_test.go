package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/lake/parquet"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// dumpTree spells every object of the table's folder: data files by name
// and size, commits and _last_checkpoint as written, the checkpoint as the
// actions it holds (decoded, one a line).
func dumpTree(t *testing.T, st store.Store, dir string) string {
	t.Helper()
	ctx := context.Background()
	objs, err := st.List(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range objs {
		data, err := store.ReadAll(ctx, st, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(o.Name, ".checkpoint.parquet"):
			s, err := decodeCheckpoint(data)
			if err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
			fmt.Fprintf(&b, "== %s (Parquet, decoded)\n", o.Name)
			for _, a := range checkpointActions(s) {
				line, _ := json.Marshal(a)
				b.Write(line)
				b.WriteByte('\n')
			}
		case strings.Contains(o.Name, LogDir):
			fmt.Fprintf(&b, "== %s\n%s", o.Name, data)
		default:
			fmt.Fprintf(&b, "== %s (%d bytes)\n", o.Name, len(data))
		}
	}
	return b.String()
}

// checkpointActions lists a snapshot as the actions a checkpoint holds, in
// the checkpoint's order.
func checkpointActions(s *Snapshot) []Action {
	acts := []Action{{Protocol: s.Protocol}, {MetaData: s.Metadata}}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Txns {
			if !yield(k) {
				return
			}
		}
	}) {
		tx := s.Txns[id]
		acts = append(acts, Action{Txn: &tx})
	}
	for _, p := range s.Paths() {
		acts = append(acts, Action{Add: s.Files[p]})
	}
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.Tombstones {
			if !yield(k) {
				return
			}
		}
	}) {
		acts = append(acts, Action{Remove: s.Tombstones[p]})
	}
	return acts
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the table holds (go test -update rewrites it; review the diff):\n%s", path, got)
	}
}

// TestGoldenLog: the whole table folder of a tiny table after 12 versions:
// a first commit of three rows in three partitions, appends, a compaction,
// a column added, a column dropped, a checkpoint at version 10.
func TestGoldenLog(t *testing.T) {
	st, _ := newStore(t)
	buildTable(t, st)
	golden(t, "golden_log.txt", dumpTree(t, st, "account/"))
}

// TestReadReplay: the snapshot read through the checkpoint equals the one
// replayed from the commits alone, and the one the writer holds.
func TestReadReplay(t *testing.T) {
	st, _ := newStore(t)
	w := buildTable(t, st)
	ctx := context.Background()
	viaCheckpoint, err := w.log.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, w.log.CheckpointName(10)); err != nil {
		t.Fatal(err)
	}
	replayed, err := w.log.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Snapshot{"checkpoint": viaCheckpoint, "replay": replayed} {
		if s.Version != 11 || !slices.Equal(s.Paths(), w.snap.Paths()) {
			t.Errorf("%s: version %d, files %v; want 11, %v", name, s.Version, s.Paths(), w.snap.Paths())
		}
		if s.Metadata.SchemaString != w.snap.Metadata.SchemaString || s.Txns[AppID].Version != w.seq {
			t.Errorf("%s: metadata or txn differ: %+v %+v", name, s.Metadata, s.Txns)
		}
		for p, a := range w.snap.Files {
			if b := s.Files[p]; b.Stats != a.Stats || b.Size != a.Size || b.PartitionValues[PartitionColumn] != a.PartitionValues[PartitionColumn] {
				t.Errorf("%s: %s: %+v, want %+v", name, p, b, a)
			}
		}
	}
	// A reader that read version 5 reads only what follows.
	five := NewSnapshot()
	for v := int64(0); v <= 5; v++ {
		acts, err := w.log.ReadCommit(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := five.Apply(v, acts); err != nil {
			t.Fatal(err)
		}
	}
	later, err := w.log.ReadFrom(ctx, five)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(later.Paths(), w.snap.Paths()) || five.Version != 5 {
		t.Errorf("ReadFrom: %v (base now %d)", later.Paths(), five.Version)
	}
}

// TestIndependentReaders: DuckDB's read_parquet and hyparquet (npm), given
// the files the log names, read the rows that were written, row for row.
func TestIndependentReaders(t *testing.T) {
	st, _ := newStore(t)
	w := buildTable(t, st)
	snap, err := w.log.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range snap.Paths() {
		files = append(files, w.log.Dir()+p)
	}
	want := w.expect()
	if d := diffRows(duckRows(t, st, w.cols, files), want); d != "" {
		t.Errorf("DuckDB read: %s", d)
	}
	if d := diffRowsFunc(hypRows(t, st, w.cols, files), asHyparquet(w.cols, want), nearDecimal); d != "" {
		t.Errorf("hyparquet read: %s", d)
	}
}

// hostileString returns a string of awkward characters.
func hostileString(r *rand.Rand) string {
	pieces := []string{"", "\"", "'", ",", "\n", "\r\n", "\x00", "\\", "é", "漢字", "🦆", "\u2028", " ", "NULL", "null", "\t", "=", "%", "{}", "\uFFFD"}
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// hostileDecimal returns a decimal that fits decimal(p,s), at the edges.
func hostileDecimal(r *rand.Rand, p, s int) string {
	digits := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	}
	if r.IntN(4) == 0 {
		return "-" + strings.Repeat("9", p-s) + "." + strings.Repeat("9", s)
	}
	sign := ""
	if r.IntN(2) == 0 {
		sign = "-"
	}
	v := sign + digits(1+r.IntN(p-s))
	if s > 0 {
		v += "." + digits(r.IntN(s+1)) + strings.Repeat("0", r.IntN(3))
	}
	return strings.TrimSuffix(v, ".")
}

func hostileTime(r *rand.Rand) any {
	switch r.IntN(8) {
	case 0:
		return schema.Infinity
	case 1:
		return schema.NegInfinity
	case 2:
		return time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	case 3:
		return time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	case 4:
		return time.Date(-44, 3, 15, 12, 0, 0, 0, time.UTC)
	case 5:
		return time.Date(12000, 1, 1, 0, 0, 0, 0, time.FixedZone("", -5*3600))
	}
	return time.UnixMicro(r.Int64N(1<<52) - 1<<51).In(time.FixedZone("", 3600*(r.IntN(25)-12)))
}

// TestHostileValues: random rows of awkward values (quotes, newlines, NUL,
// emoji, decimals at the edges of their precision, infinite and BC times,
// extreme integers, NaN and infinite doubles, NULLs) read back exactly by
// DuckDB and hyparquet. The seed is in the failure.
func TestHostileValues(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	cols := testCols()
	var changes []source.Change
	for i := range 200 {
		vals := []any{hostileString(r), hostileDecimal(r, 12, 2), hostileDecimal(r, 38, 10),
			[]float64{math.NaN(), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64, -0.0, r.NormFloat64()}[r.IntN(6)],
			r.IntN(2) == 0, `{"k":"` + strings.ReplaceAll(hostileString(r), `"`, "") + `"}`, hostileString(r), hostileTime(r),
			[]int64{math.MinInt64, math.MaxInt64, 0, r.Int64()}[r.IntN(4)], hostileTime(r)}
		for j := range vals {
			if r.IntN(8) == 0 {
				vals[j] = nil
			}
		}
		ch := row(guid(i), r.Int64N(math.MaxInt64), vals...)
		if r.IntN(10) == 0 {
			ch = source.Change{Table: "account", ID: guid(i), Version: int64(i), Deleted: true}
		}
		changes = append(changes, ch)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	b, err := parquet.NewBuilder("account", cols, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range changes {
		if err := b.Append(&changes[i]); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	st, _ := newStore(t)
	l := NewLog(st, "account")
	rec := b.Record()
	defer rec.Release()
	if _, err := l.WriteDataFile(context.Background(), DataFileName("1", "00000001_1"), "1", rec, indexedNames(cols), now); err != nil {
		t.Fatal(err)
	}
	files := []string{"account/" + DataFileName("1", "00000001_1")}
	want := expectRows(t, cols, changes, now)
	if d := diffRows(duckRows(t, st, cols, files), want); d != "" {
		t.Errorf("seed %d: DuckDB read: %s", seed, d)
	}
	if d := diffRowsFunc(hypRows(t, st, cols, files), asHyparquet(cols, want), nearDecimal); d != "" {
		t.Errorf("seed %d: hyparquet read: %s", seed, d)
	}
}

// TestRefusedValues: a value that does not fit its column is refused with
// a *lake.ValueError naming table, column and Id, and adds no row.
func TestRefusedValues(t *testing.T) {
	cases := []struct {
		name string
		vals []any
		col  string
	}{
		{"too many fraction digits", []any{nil, "1.234", nil, nil, nil, nil, nil, nil, nil, nil}, "revenue"},
		{"too many integer digits", []any{nil, "12345678901", nil, nil, nil, nil, nil, nil, nil, nil}, "revenue"},
		{"not a decimal", []any{nil, "1e5", nil, nil, nil, nil, nil, nil, nil, nil}, "revenue"},
		{"wrong Go type", []any{nil, nil, nil, "1.5", nil, nil, nil, nil, nil, nil}, "score"},
		{"time out of range", []any{nil, nil, nil, nil, nil, nil, nil, nil, nil, time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)}, "createdon"},
		{"bad guid", []any{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}, "Id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := parquet.NewBuilder("account", testCols(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			id := guid(1)
			if c.col == "Id" {
				id = "NOT-A-GUID"
			}
			ch := row(id, 1, c.vals...)
			err = b.Append(&ch)
			var ve *lake.ValueError
			if !errors.As(err, &ve) || ve.Column != c.col || ve.Table != "account" || ve.ID != id {
				t.Fatalf("got %v, want a ValueError of column %s", err, c.col)
			}
			if b.Rows() != 0 {
				t.Errorf("%d rows added", b.Rows())
			}
		})
	}
	b, _ := parquet.NewBuilder("account", testCols(), time.Now())
	defer b.Release()
	ch := source.Change{ID: guid(1), Columns: []string{"nope"}, Values: []any{1}}
	if err := b.Append(&ch); err == nil {
		t.Error("a column the layout lacks was accepted")
	}
}

// TestConflict: a version another writer committed first is refused with
// ErrConflict and leaves that writer's commit as it was.
func TestConflict(t *testing.T) {
	st, _ := newStore(t)
	w := buildTable(t, st)
	ctx := context.Background()
	before, _ := store.ReadAll(ctx, st, w.log.CommitName(11))
	err := w.log.Commit(ctx, 11, []Action{{CommitInfo: &CommitInfo{Operation: "WRITE"}}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	after, _ := store.ReadAll(ctx, st, w.log.CommitName(11))
	if !bytes.Equal(before, after) {
		t.Error("the losing writer changed the commit")
	}
	// Nothing to commit: Advance to the same target writes no version.
	s, err := w.log.Advance(ctx, w.snap, Target{Metadata: *w.snap.Metadata, Files: w.files, Seq: w.seq, Operation: "WRITE", Now: w.now})
	if err != nil || s.Version != 11 {
		t.Errorf("a no-op Advance: version %d, %v", s.Version, err)
	}
}

// TestAppendOnlyRemoval: an append-only table whose data is removed (a
// re-initialisation) first gets a version lifting delta.appendOnly, and a
// compaction (dataChange false) needs none.
func TestAppendOnlyRemoval(t *testing.T) {
	st, _ := newStore(t)
	w := newWriter(t, st)
	conf := map[string]string{AppendOnlyProperty: "true"}
	w.commit(w.write([]source.Change{row(guid(1), 1, "a", nil, nil, nil, nil, nil, nil, nil, nil, day1)}), false, conf)
	w.commit(append(slices.Clone(w.files), w.write([]source.Change{row(guid(2), 2, "b", nil, nil, nil, nil, nil, nil, nil, nil, day1)})...), false, conf)
	w.commit(w.write([]source.Change{row(guid(1), 1, "a", nil, nil, nil, nil, nil, nil, nil, nil, day1), row(guid(2), 2, "b", nil, nil, nil, nil, nil, nil, nil, nil, day1)}), true, conf)
	if w.snap.Version != 2 {
		t.Fatalf("compaction: version %d, want 2", w.snap.Version)
	}
	w.commit(w.write([]source.Change{row(guid(3), 1, "c", nil, nil, nil, nil, nil, nil, nil, nil, day1)}), false, conf)
	if w.snap.Version != 4 {
		t.Fatalf("removal: version %d, want 4 (a lifting version, then the removal)", w.snap.Version)
	}
	lift, err := w.log.ReadCommit(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range lift {
		if a.Add != nil || a.Remove != nil {
			t.Errorf("the lifting version changes data: %+v", a)
		}
		if a.MetaData != nil && a.MetaData.Configuration[AppendOnlyProperty] != "" {
			t.Errorf("the lifting version keeps %s", AppendOnlyProperty)
		}
	}
	if w.snap.Metadata.Configuration[AppendOnlyProperty] != "true" {
		t.Error("the removal does not set delta.appendOnly again")
	}
}
