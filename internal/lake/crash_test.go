package lake

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/store"
)

// crashEnv names the lake folder a re-executed test binary writes to until
// it is killed.
const crashEnv = "LAKELINK_LAKE_CRASH_DIR"

const crashIDs = 25

// crashBatch is batch k of the crash test's deterministic change stream.
// Versions are k, so they grow per Id; no Id appears twice in a batch.
func crashBatch(k int) []source.Change {
	y := time.Date(2021+k%3, 6, 1, 0, 0, 0, 0, time.UTC)
	a, b, d := (k*7)%crashIDs, (k*3)%crashIDs, (k*5)%crashIDs
	chs := []source.Change{account(a, int64(k), fmt.Sprintf("%d@%d", a, k), y)}
	if b != a {
		chs = append(chs, account(b, int64(k), fmt.Sprintf("%d@%d", b, k), y))
	}
	if k%4 == 0 && d != a && d != b {
		chs = append(chs, del("account", d, int64(k)))
	}
	return chs
}

func crashModel(upto int) map[string]modelRow {
	m := map[string]modelRow{}
	for k := 1; k <= upto; k++ {
		for _, ch := range crashBatch(k) {
			name, _ := ch.Values["name"].(string)
			m[ch.ID] = modelRow{version: ch.Version, deleted: ch.Deleted, name: name}
		}
	}
	return m
}

func crashOptions() Options {
	return Options{Link: "crash", Grace: time.Millisecond, MaxFileRows: 5, CompactRows: 10, CompactAge: time.Millisecond,
		SnapshotInterval: time.Millisecond, SnapshotsToKeep: 2}
}

// TestMain turns the test binary into the crash test's writer when crashEnv
// is set: it commits batches and runs Maintain concurrently until killed.
func TestMain(m *testing.M) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	checkpointEvery, keepCommits = 7, 10
	if err := crashWriter(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func crashWriter(dir string) error {
	ctx := context.Background()
	st, err := store.NewLocal(dir)
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
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Define: define(accountSchema(), TableOptions{}), Cursor: "0", Phase: Completed}}}); err != nil {
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
		if _, err := l.Commit(ctx, Tx{Tables: []TableTx{{Name: "account", Changes: crashBatch(k), Cursor: strconv.Itoa(k), CaughtUp: true}}}); err != nil {
			return err
		}
	}
	return nil
}

// TestCrashSafety kills a writer with SIGKILL at random instants, many
// times, and checks after each kill that the committed state is a prefix of
// the batches applied, that every object it names is there and whole, and
// that Open removes the orphans.
func TestCrashSafety(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	last := 0
	const kills = 25
	for i := range kills {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: the writer ended on its own (%v) before it was killed", i, err)
		}
		s, err := ReadState(ctxT(t), st)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		ts := s.Tables["account"]
		if ts == nil {
			continue
		}
		k, err := strconv.Atoi(ts.Cursor)
		if err != nil {
			t.Fatalf("kill %d: cursor %q", i, ts.Cursor)
		}
		if k < last {
			t.Fatalf("kill %d: committed batch %d was lost (state at %d)", i, last, k)
		}
		last = k
		for _, p := range tableObjects(ts) {
			if _, err := store.ReadAll(ctxT(t), st, p); err != nil {
				t.Fatalf("kill %d: the state names %s: %v", i, p, err)
			}
		}
		for _, f := range append(append([]File(nil), ts.Files...), ts.Changes...) {
			if n := len(readRows(t, st, f.Path, ts.Columns)); int64(n) != f.Rows {
				t.Fatalf("kill %d: %s holds %d rows, the state says %d", i, f.Path, n, f.Rows)
			}
		}
		checkModel(t, st, ts, crashModel(k), 5)
		if data, err := store.ReadAll(ctxT(t), st, modelName); err == nil && !json.Valid(data) {
			t.Fatalf("kill %d: model.json is not valid JSON", i)
		}
		// Open removes the orphans of the killed writer.
		opts := crashOptions()
		opts.Grace = -1
		if _, err := Open(ctxT(t), st, opts); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		keep := named(s)
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
	t.Logf("%d kills, %d batches committed", kills, last)
}
