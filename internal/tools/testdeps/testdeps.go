// Package testdeps finds, from tests, the tools scripts/test-deps.sh
// installs: Node.js, npm packages pinned by a package-lock.json, and Go
// commands pinned by version. Each lookup fails the test, naming the
// command that installs what is missing: a test never skips for a missing
// tool (`make test` runs the script first).
//
// It imports only the standard library, so any test may use it.
package testdeps

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const install = "run `bash scripts/test-deps.sh` (make test does)"

// Node returns the path of the node binary.
func Node(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: install Node.js (%s): %v", install, err)
	}
	return node
}

// NodeModules returns the node_modules folder where scripts/test-deps.sh's
// `npm_pinned DIR` installed the packages pinned in dir (a folder with a
// package.json and package-lock.json, relative to the test's working
// folder or absolute): <user cache>/lakelink/npm/<base name of dir>-<first
// 12 hex of sha256(package-lock.json)>, so a changed lock file gets a fresh
// install beside the old one.
func NodeModules(t testing.TB, dir string) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("read the pinned npm lock file of %s: %v", dir, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("find the user cache folder for the npm packages of %s (set XDG_CACHE_HOME or HOME): %v", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("npm packages of %s: %v", dir, err)
	}
	sum := sha256.Sum256(lock)
	folder := filepath.Join(cache, "lakelink", "npm", filepath.Base(abs)+"-"+hex.EncodeToString(sum[:])[:12])
	// .complete is written last by npm_pinned: a folder without it is an
	// interrupted install.
	if _, err := os.Stat(filepath.Join(folder, ".complete")); err != nil {
		t.Fatalf("the npm packages pinned in %s are not installed in %s: %s: %v", dir, folder, install, err)
	}
	return filepath.Join(folder, "node_modules")
}

// Bin returns the path of the Go command name that `go_tool PKG@VERSION`
// installed into .tools/bin of the repository holding the test's working
// folder.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("find %s: no go.mod above the test's working folder", name)
		}
		dir = parent
	}
	bin := filepath.Join(dir, ".tools", "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not installed in %s: %s: %v", name, filepath.Dir(bin), install, err)
	}
	return bin
}
