package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// crashEnv names the lake folder a re-executed test binary writes to until
// it is killed.
const crashEnv = "LAKELINK_LAKE_CRASH_DIR"

const crashIDs = 25

// The crash test's stream: batch k changes the in-place table account and
// the append-only table contact the same way; account is re-initialised
// at every multiple of crashResetEvery, and gains a column at every
// multiple of crashEvolveEvery.
const (
	crashResetEvery  = 40
	crashEvolveEvery = 25
)

// crashBatch is batch k of table's deterministic change stream. Versions
// are k, so they grow per Id; no Id appears twice in a batch.
func crashBatch(table string, k int) []source.Change {
	y := time.Date(2021+k%3, 6, 1, 0, 0, 0, 0, time.UTC)
	a, b, d := (k*7)%crashIDs, (k*3)%crashIDs, (k*5)%crashIDs
	chs := []source.Change{account(a, int64(k), fmt.Sprintf("%d@%d", a, k), y)}
	if b != a {
		chs = append(chs, account(b, int64(k), fmt.Sprintf("%d@%d", b, k), y))
	}
	if k%4 == 0 && d != a && d != b {
		chs = append(chs, del("account", d, int64(k)))
	}
	for i := range chs {
		chs[i].Table = table
	}
	return chs
}

// crashSchema is table's schema as of batch k.
func crashSchema(table string, k int) *schema.Table {
	s := accountSchema()
	s.Name = table
	for e := crashEvolveEvery; e <= k; e += crashEvolveEvery {
		s.Columns = append(s.Columns, schema.Column{Name: fmt.Sprintf("extra%d", e), Type: schema.String})
	}
	return s
}

// crashTx is the commit of batch k.
func crashTx(k int) Tx {
	acc := TableTx{Name: "account", Changes: crashBatch("account", k), Cursor: strconv.Itoa(k), CaughtUp: true}
	if k%crashEvolveEvery == 0 {
		acc.Define = define(crashSchema("account", k), TableOptions{})
	}
	if k%crashResetEvery == 0 {
		acc.Reset = fmt.Sprint("reset at ", k)
	}
	con := TableTx{Name: "contact", Changes: crashBatch("contact", k), Cursor: strconv.Itoa(k)}
	return Tx{Tables: []TableTx{acc, con}}
}

func crashModel(from, upto int) map[string]modelRow {
	m := map[string]modelRow{}
	for k := from; k <= upto; k++ {
		for _, ch := range crashBatch("account", k) {
			name, _ := value(ch, "name").(string)
			m[ch.ID] = modelRow{version: ch.Version, deleted: ch.Deleted, name: name}
		}
	}
	return m
}

func crashOptions() Options {
	return Options{Link: "crash", Logger: slog.New(slog.DiscardHandler), Grace: time.Millisecond, MaxFileRows: 5, CompactRows: 10, CompactAge: time.Millisecond,
		SnapshotInterval: time.Millisecond, SnapshotsToKeep: 2}
}

// TestMain turns the test binary into the crash test's writer when crashEnv
// is set: it commits batches and runs Maintain concurrently until killed.
func TestMain(m *testing.M) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	checkpointEvery, checkpointMost, keepCommits = 7, 7, 10
	if err := crashWriter(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func crashWriter(dir string) error {
	ctx := context.Background()
	st, err := local.New(dir)
	if err != nil {
		return err
	}
	l, err := Open(ctx, st, crashOptions())
	if err != nil {
		return err
	}
	k := 0
	if ts := l.State().Tables["account"]; ts != nil {
		k, _ = strconv.Atoi(ts.Cursor)
	} else {
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{
			{Name: "account", Define: define(crashSchema("account", 0), TableOptions{}), Cursor: "0", Phase: Completed},
			{Name: "contact", Define: define(crashSchema("contact", 0), TableOptions{AppendOnly: true}), Cursor: "0", Phase: Completed},
		}}); err != nil {
			return err
		}
	}
	go func() {
		for {
			if err := l.Maintain(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "maintain:", err)
				os.Exit(1)
			}
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		k++
		tx := crashTx(k)
		switch {
		case k%crashResetEvery == 0:
			if err := stageReplace(ctx, l, &tx, k); err != nil {
				return err
			}
		case k%5 == 1 && k%crashEvolveEvery != 0:
			if err := stageTx(ctx, l, &tx); err != nil {
				return err
			}
		}
		if _, err := l.Commit(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// stageTx moves the changes of tx into stages, one change per part with a
// pause after the first, as a source transaction larger than a batch arrives:
// kills land in the middle of such transactions too.
func stageTx(ctx context.Context, l *Lake, tx *Tx) error {
	for i := range tx.Tables {
		ttx := &tx.Tables[i]
		stage := l.StageTx
		if ts := l.State().Tables[ttx.Name]; ts != nil && ts.Phase == InProgress {
			stage = l.Stage
		}
		st, err := stage(ttx.Name)
		if err != nil {
			return err
		}
		for j, ch := range ttx.Changes {
			if err := st.Add(ctx, []source.Change{ch}); err != nil {
				return err
			}
			if j == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		ttx.Changes, ttx.Stage = nil, st
	}
	return nil
}

// stageReplace turns the reset of account in tx (batch k) into a fresh
// copy built beside the table's data, part by part with pauses, as the
// engine re-initialises a table: kills land in the middle of it, and must
// leave the old data as it was (issue #15 case 3).
func stageReplace(ctx context.Context, l *Lake, tx *Tx, k int) error {
	acc := &tx.Tables[0]
	d := Definition{Source: crashSchema("account", k)}
	st, err := l.StageReplace(acc.Name, d)
	if err != nil {
		return err
	}
	for _, ch := range acc.Changes {
		if err := st.Add(ctx, []source.Change{ch}); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	acc.Changes, acc.Stage, acc.Define = nil, st, &d
	return nil
}

// TestCrashSafety kills a writer with SIGKILL at random instants, many
// times (also in the middle of transactions it stages part by part), and checks after each kill that the committed state is a prefix of
// the batches applied, that every object it names is there and whole, and
// that Open removes the orphans.
func TestCrashSafety(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	last, midReplace := 0, 0
	const kills = 25
	for i := range kills {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: the writer ended on its own (%v) before it was killed:\n%s", i, err, stderr.String())
		}
		s, err := ReadState(ctxT(t), st)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		ts, con := s.Tables["account"], s.Tables["contact"]
		if ts == nil {
			continue
		}
		k, err := strconv.Atoi(ts.Cursor)
		if err != nil || con.Cursor != ts.Cursor {
			t.Fatalf("kill %d: cursors %q and %q: a commit was not atomic", i, ts.Cursor, con.Cursor)
		}
		if k < last {
			t.Fatalf("kill %d: committed batch %d was lost (state at %d)", i, last, k)
		}
		last = k
		for _, x := range []*TableState{ts, con} {
			for _, p := range x.Objects() {
				if _, err := store.ReadAll(ctxT(t), st, p); err != nil {
					t.Fatalf("kill %d: the state names %s: %v", i, p, err)
				}
			}
			for _, f := range append(append([]File(nil), x.Files...), x.Changes...) {
				if n := len(readRows(t, st, f.Path, x.Columns)); int64(n) != f.Rows {
					t.Fatalf("kill %d: %s holds %d rows, the state says %d", i, f.Path, n, f.Rows)
				}
			}
		}
		live := map[string]bool{}
		for _, x := range s.Tables {
			for _, p := range x.Objects() {
				live[p] = true
			}
		}
		for _, g := range s.Garbage {
			if live[g.Path] {
				t.Fatalf("kill %d: %s is both named by a table and garbage", i, g.Path)
			}
		}
		// account restarts at its last reset; contact keeps every row.
		checkModel(t, st, ts, crashModel(max(1, k-k%crashResetEvery), k), 5)
		checkModel(t, st, con, crashModel(1, k), 5)
		var changes int64
		for b := 1; b <= k; b++ {
			changes += int64(len(crashBatch("contact", b)))
		}
		if con.Rows != changes {
			t.Fatalf("kill %d: contact counts %d change rows, want %d", i, con.Rows, changes)
		}
		if want := crashSchema("account", k); len(ts.Source.Columns) != len(want.Columns) {
			t.Fatalf("kill %d: account has %d source columns at batch %d, want %d", i, len(ts.Source.Columns), k, len(want.Columns))
		}
		if data, err := store.ReadAll(ctxT(t), st, modelName); err == nil && !json.Valid(data) {
			t.Fatalf("kill %d: model.json is not valid JSON", i)
		}
		// A replacement's files, one generation ahead: the kill landed
		// in the middle of a fresh copy, and the old data is what the
		// checks above read.
		// Open files are staging files still (".tmp-<name>-...").
		if ents, err := os.ReadDir(filepath.Join(dir, dataDir, "account")); err == nil && slices.ContainsFunc(ents, func(e fs.DirEntry) bool {
			return strings.Contains(e.Name(), fmt.Sprintf("_%d_", ts.Generation+1))
		}) {
			midReplace++
		}
		// Open removes the orphans of the killed writer.
		opts := crashOptions()
		opts.Grace = -1
		if _, err := Open(ctxT(t), st, opts); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		keep := s.Names()
		objs, err := st.List(ctxT(t), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if isOrphanCandidate(o.Name) && !keep[o.Name] {
				t.Fatalf("kill %d: orphan %s survived Open", i, o.Name)
			}
		}
		if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
				return fmt.Errorf("kill %d: staging file %s survived Open", i, p)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if last < 20 {
		t.Fatalf("only %d batches committed over %d runs: the test did not exercise much", last, kills)
	}
	t.Logf("%d kills (%d in the middle of a fresh copy), %d batches committed", kills, midReplace, last)
}
