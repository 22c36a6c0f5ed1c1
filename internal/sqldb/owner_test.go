package sqldb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/store/local"
)

// holderEnv, set, makes the test binary hold a lake database open on the
// lake and cache folders it names (lake<TAB>cache) until its stdin closes:
// the second live process of TestCacheOwnedByLiveProcess.
const holderEnv = "LAKELINK_TEST_CACHE_HOLDER"

func TestMain(m *testing.M) {
	if dirs := os.Getenv(holderEnv); dirs != "" {
		if err := holdCache(dirs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func holdCache(dirs string) error {
	lakeDir, cacheDir, _ := strings.Cut(dirs, "\t")
	ctx := context.Background()
	st, err := local.New(lakeDir)
	if err != nil {
		return err
	}
	data := row(1, "a", 1, false)
	if err := store.Put(ctx, st, "a/2020_1_1.csv", []byte(data)); err != nil {
		return err
	}
	tab := nameTable("a")
	tab.Files = []lake.File{{Path: "a/2020_1_1.csv", Rows: 1, Bytes: int64(len(data))}}
	state := &lake.State{Seq: 1, Link: "held", Tables: map[string]*lake.TableState{"a": tab}}
	db, err := open(ctx, st, func(context.Context) (*lake.State, error) { return state, nil }, Options{CacheDir: cacheDir}, st.Location(""))
	if err != nil {
		return err
	}
	defer db.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.WaitCache(wctx); err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// TestCacheOwnedByLiveProcess: the cache folder of a live process is never
// removed by another process's sweep, even when its lake is gone and it was
// idle for hours (issue #15, case 17); once that process is killed (kill
// -9: no clean-up of its own), the next sweep removes it.
func TestCacheOwnedByLiveProcess(t *testing.T) {
	base := t.TempDir()
	lakeDir, parent := filepath.Join(base, "lake"), filepath.Join(base, "cache")
	held := filepath.Join(parent, "held")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), holderEnv+"="+lakeDir+"\t"+held)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		child.Process.Kill()
		child.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("the holding process said %q, %v", line, err)
	}
	if err := os.RemoveAll(lakeDir); err != nil {
		t.Fatal(err)
	}
	age := func() {
		old := time.Now().Add(-2 * staleTemp)
		err := filepath.Walk(held, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chtimes(p, old, old)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	age()
	sweepFrom := func(name string) {
		t.Helper()
		l := newTestLake(t)
		tab := nameTable("a")
		tab.Files = []lake.File{l.write("a/2020_1_1.csv", row(1, "a", 1, false))}
		l.commit(tab)
		db, err := open(t.Context(), l.st, l.load, Options{CacheDir: filepath.Join(parent, name)}, l.st.Location(""))
		if err != nil {
			t.Fatal(err)
		}
		warm(t, db) // the sweep of other lakes' folders runs before any conversion
		db.Close()
	}
	sweepFrom("first")
	if _, err := os.Stat(held); err != nil {
		t.Fatalf("the cache of a live process was removed: %v", err)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	age()
	sweepFrom("second")
	if _, err := os.Stat(held); err == nil {
		t.Fatal("the cache of a killed process whose lake is gone was kept")
	}
}
