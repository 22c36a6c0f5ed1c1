package lake

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

func TestEvolveLayout(t *testing.T) {
	base, err := newLayout(accountSchema())
	if err != nil {
		t.Fatal(err)
	}
	names := func(cols []Column) string {
		var out []string
		for _, c := range cols {
			n := c.Name
			if c.Dropped {
				n += "(dropped)"
			}
			out = append(out, n)
		}
		return strings.Join(out, ",")
	}
	const initial = "Id,SinkCreatedOn,SinkModifiedOn,accountid,name,revenue,statecode,parentaccountid,versionnumber,createdon,modifiedon,IsDelete"
	if got := names(base); got != initial {
		t.Fatalf("layout %s", got)
	}
	tests := []struct {
		name   string
		change func(*schema.Table)
		want   string
		err    string
	}{
		{"unchanged", func(*schema.Table) {}, initial, ""},
		{"added", func(s *schema.Table) {
			s.Columns = append([]schema.Column{{Name: "telephone1", Type: schema.String}}, s.Columns...)
		}, initial + ",telephone1", ""},
		{"dropped", func(s *schema.Table) { s.Columns = s.Columns[:3] },
			"Id,SinkCreatedOn,SinkModifiedOn,accountid,name,revenue,statecode(dropped),parentaccountid(dropped),versionnumber,createdon(dropped),modifiedon(dropped),IsDelete", ""},
		{"retyped", func(s *schema.Table) { s.Columns[1].Type = schema.JSON }, "", "type changed from string to json"},
		{"collides", func(s *schema.Table) {
			s.Columns = append(s.Columns, schema.Column{Name: "IsDelete", Type: schema.Boolean})
		}, "", "collides"},
		{"longer string", func(s *schema.Table) { s.Columns[1].MaxLength = 500 }, initial, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := accountSchema()
			tt.change(s)
			got, err := evolveLayout(base, accountSchema(), s)
			if tt.err != "" {
				var le *LayoutError
				if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("want a LayoutError about %q, got %v", tt.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tt.want {
				t.Fatalf("layout %s, want %s", names(got), tt.want)
			}
		})
	}
}

// TestReadersNeverFail reads the latest state and every file it names, over
// and over, while a writer commits and Maintain compacts, snapshots and
// deletes garbage: a reader that finishes within the grace period never
// finds a file missing or partial.
func TestReadersNeverFail(t *testing.T) {
	st := newStore(t)
	l, err := Open(ctxT(t), st, Options{Link: "test", Grace: 500 * time.Millisecond, MaxFileRows: 20, CompactRows: 10, CompactAge: time.Millisecond, SnapshotInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}})
	ctx, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, 8)
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				s, err := ReadState(ctx, st)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				if ts := s.Tables["account"]; ts != nil {
					for _, p := range ts.Objects() {
						if _, err := store.ReadAll(ctx, st, p); err != nil {
							errs <- fmt.Errorf("state %d names %s: %w", s.Seq, p, err)
							return
						}
					}
				}
				reads.Add(1)
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := l.Maintain(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
		}
	})
	y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for k := 1; ctx.Err() == nil; k++ {
		chs := []source.Change{account(k%50, int64(k), fmt.Sprint(k), y.AddDate(0, k%24, 0))}
		if k%7 == 0 {
			chs = append(chs, del("account", (k+25)%50, int64(k)))
		}
		if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Changes: chs}}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() < 10 {
		t.Fatalf("only %d reads", reads.Load())
	}
	// Commits never paused, yet snapshots were taken.
	if n := len(l.State().Tables["account"].Snapshots); n == 0 {
		t.Fatal("no snapshot while changes kept arriving")
	}
}

func TestUnlink(t *testing.T) {
	for _, deleteData := range []bool{false, true} {
		t.Run(fmt.Sprint(deleteData), func(t *testing.T) {
			st := newStore(t)
			c := newClock()
			l := openLake(t, st, c)
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Changes: []source.Change{account(1, 1, "a", t0)}, Phase: Completed}}})
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(1, 2, "b", t0)}}}})
			// A reset leaves garbage under _lakelink/data/, which unlink removes.
			mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Reset: "test", Changes: []source.Change{account(1, 3, "c", t0)}}}})
			if err := l.Maintain(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := store.Put(ctxT(t), st, "README.txt", []byte("mine")); err != nil {
				t.Fatal(err)
			}
			if err := Unlink(ctxT(t), st, nil, deleteData); err != nil {
				t.Fatal(err)
			}
			objs, _ := st.List(ctxT(t), "")
			var left []string
			for _, o := range objs {
				left = append(left, o.Name)
			}
			want := "README.txt"
			if !deleteData {
				ts := l.State().Tables["account"]
				want = "Microsoft.Athena.TrickleFeedService/account-EntityMetadata.json,Microsoft.Athena.TrickleFeedService/account-model.json," +
					"OptionsetMetadata/GlobalOptionsetMetadata.csv,OptionsetMetadata/OptionsetMetadata.csv,OptionsetMetadata/StateMetadata.csv," +
					"OptionsetMetadata/StatusMetadata.csv,OptionsetMetadata/TargetMetadata.csv,README.txt," +
					"account/" + ts.Files[0].Name + ".csv,model.json"
			}
			if strings.Join(left, ",") != want {
				t.Fatalf("left %v, want %s", left, want)
			}
			s, err := ReadState(ctxT(t), st)
			if err != nil || s.Seq != 0 {
				t.Fatalf("state after unlink: %v %v", s, err)
			}
		})
	}
}

// TestCompactionMemory checks that compacting a table with one change does
// not hold the table in memory: peak heap growth stays far below its size.
func TestCompactionMemory(t *testing.T) {
	st := newStore(t)
	c := newClock()
	l, err := Open(ctxT(t), st, Options{Link: "test", Now: c.now, Grace: time.Minute, MaxFileRows: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}}})
	const rows, batch = 200_000, 10_000
	pad := strings.Repeat("p", 200)
	y := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < rows; start += batch {
		chs := make([]source.Change, 0, batch)
		for n := start; n < start+batch; n++ {
			chs = append(chs, account(n, 1, pad, y))
		}
		mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}})
	}
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Phase: Completed}}})
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(rows/2, 2, "changed", y), del("account", 7, 2)}}}})
	var size int64
	for _, f := range l.State().Tables["account"].Files {
		size += f.Bytes
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	c.add(time.Hour)
	start := time.Now()
	if err := l.Maintain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(done)
	ts := l.State().Tables["account"]
	if len(ts.Changes) != 0 || ts.Rows != rows-1 {
		t.Fatalf("after compaction: %d change files, %d rows", len(ts.Changes), ts.Rows)
	}
	growth := int64(peak.Load()) - int64(baseline)
	t.Logf("table %d MB in %d files; compaction + snapshot took %v; peak heap growth %d MB", size>>20, len(ts.Files), took, growth>>20)
	if growth > size/2 {
		t.Fatalf("peak heap grew by %d MB compacting a %d MB table", growth>>20, size>>20)
	}
}

func BenchmarkCommitOneRow(b *testing.B) {
	st, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(context.Background(), st, Options{Link: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}}); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Changes: []source.Change{account(i%1000, int64(i+1), "x", t0)}, Cursor: fmt.Sprint(i)}}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopyBatch(b *testing.B) {
	st, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(context.Background(), st, Options{Link: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{})}}}); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	chs := make([]source.Change, batch)
	for i := range chs {
		chs[i] = account(i, 1, "some account name", t0.AddDate(-i%5, 0, 0))
	}
	b.ReportMetric(batch, "rows/op")
	for b.Loop() {
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Changes: chs}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// flakyStore publishes a commit record, then reports a failure, once.
type flakyStore struct {
	store.Store
	fail atomic.Bool
}

func (f *flakyStore) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := f.Store.PutIfAbsent(ctx, name, data); err != nil {
		return err
	}
	if strings.HasPrefix(name, logDir) && f.fail.CompareAndSwap(true, false) {
		return errors.New("connection reset")
	}
	return nil
}

// TestUncertainCommit: a record write that fails after publishing must not
// delete the commit's objects, and the next commit must build on the state
// the store holds.
func TestUncertainCommit(t *testing.T) {
	st := &flakyStore{Store: newStore(t)}
	l := openLake(t, st, newClock())
	mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Phase: Completed}}})
	st.fail.Store(true)
	batch := []source.Change{account(1, 1, "a", t0)}
	if _, err := l.Commit(ctxT(t), Tx{Tables: []TableTx{{Name: "account", Changes: batch, Cursor: "1"}}}); err == nil {
		t.Fatal("want the injected failure")
	}
	// The record landed: State says so at once, so a caller resumes after it.
	if s := l.State(); s.Seq != 2 || s.Tables["account"].Cursor != "1" {
		t.Fatalf("after an uncertain commit that landed: seq %d cursor %q", s.Seq, s.Tables["account"].Cursor)
	}
	// The engine retries the batch; it is applied idempotently.
	s := mustCommit(t, l, Tx{Tables: []TableTx{{Name: "account", Changes: batch, Cursor: "1"}}})
	if s.Seq != 3 {
		t.Fatalf("seq %d after an uncertain commit and a retry, want 3", s.Seq)
	}
	ts := s.Tables["account"]
	for _, p := range ts.Objects() {
		if _, err := store.ReadAll(ctxT(t), st, p); err != nil {
			t.Fatalf("the state names %s: %v", p, err)
		}
	}
	if got := current(t, st, ts); len(got) != 1 || got[guid(1)]["name"] != "a" {
		t.Fatalf("rows %v", got)
	}
}

// BenchmarkInitialSync300 commits what an initial sync of 300 small tables
// costs the lake: a Define, one copy batch of 100 rows with Completed, and
// the Maintain rounds that take the first snapshots.
func BenchmarkInitialSync300(b *testing.B) {
	for b.Loop() {
		st, err := local.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		l, err := Open(ctx, st, Options{Link: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 300 {
			s := accountSchema()
			s.Name = fmt.Sprintf("table%03d", i)
			if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: s.Name, Define: define(s, TableOptions{})}}}); err != nil {
				b.Fatal(err)
			}
			chs := make([]source.Change, 100)
			for n := range chs {
				chs[n] = account(n, 1, "name", t0)
				chs[n].Table = s.Name
			}
			if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: s.Name, Changes: chs, Phase: Completed, Cursor: "c"}}}); err != nil {
				b.Fatal(err)
			}
			if i%50 == 0 {
				if err := l.Maintain(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := l.Maintain(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestColumnNames: physical names are unique ignoring case; lakelink's columns
// keep theirs and a clashing source column gets the first free suffix.
func TestColumnNames(t *testing.T) {
	cols := []Column{{Name: "Id", System: true, Type: schema.Guid}, {Name: "id", Type: schema.String}, {Name: "ID_2", Type: schema.String}, {Name: "iD", Type: schema.Int64}}
	got := strings.Join(ColumnNames(cols), ",")
	if want := "Id,id_3,ID_2,iD_4"; got != want {
		t.Errorf("ColumnNames = %s, want %s", got, want)
	}
}
