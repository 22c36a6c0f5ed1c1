// Package azuritetest starts throwaway Azure Blob emulators for tests:
// Azurite, the npm package pinned in testdata/azurite (scripts/test-deps.sh
// installs it), run by node directly, so that stopping the node process
// stops the server. A server listens on a free port on 127.0.0.1, keeps its
// blobs in a fresh temporary folder, and takes the well-known account
// devstoreaccount1 and its key.
//
// A missing prerequisite fails the test with what to install; it never skips.
package azuritetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lakelink/lakelink/internal/tools/testdeps"
)

// Account and Key are Azurite's well-known account and its key (published
// in Azurite's documentation; no secret).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is one running Azurite.
type Server struct {
	// Endpoint is the Blob service endpoint, as lake.endpoint takes it:
	// http://127.0.0.1:PORT/devstoreaccount1.
	Endpoint string
	Port     int
	// Dir holds the blobs and the server's log.
	Dir string
	// KeyFile is a file holding Key, for lake.auth.account_key_file.
	KeyFile string

	cmd  *exec.Cmd
	done chan error
}

// Start starts an Azurite for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	node := testdeps.Node(t)
	main := filepath.Join(testdeps.NodeModules(t, packageDir(t)), "azurite", "dist", "src", "blob", "main.js")
	if _, err := os.Stat(main); err != nil {
		t.Fatalf("azuritetest: Azurite's blob server script is missing from its npm package: %v", err)
	}
	dir, err := os.MkdirTemp("", "azurite-")
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	s := &Server{Dir: dir, KeyFile: filepath.Join(dir, "key")}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("azuritetest: %v", err)
		}
		_ = os.RemoveAll(dir)
	})
	if err := os.WriteFile(s.KeyFile, []byte(Key+"\n"), 0o600); err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	// A free port may be taken between the probe and the listen: try again.
	for attempt := 0; ; attempt++ {
		err = s.run(node, main)
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatalf("azuritetest: %v", err)
		}
	}
}

// packageDir is testdata/azurite of this package, found from the
// repository root, as tests of other packages start servers too.
func packageDir(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "internal", "tools", "azuritetest", "testdata", "azurite")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("azuritetest: no go.mod above the test's working folder")
		}
		dir = parent
	}
}

func (s *Server) run(node, main string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d/%s", s.Port, Account)
	logPath := filepath.Join(s.Dir, "azurite.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd = exec.Command(node, main,
		"--location", filepath.Join(s.Dir, "data"), "--loose", "--skipApiVersionCheck", "--disableTelemetry",
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(s.Port))
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start Azurite: %w", err)
	}
	s.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(s.cmd, s.done)
	if err := s.watchdog(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case werr := <-s.done:
			s.cmd = nil
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("Azurite exited at start (%v):\n%s", werr, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			_ = s.stop()
			return fmt.Errorf("Azurite did not listen on port %d within 30s:\n%s", s.Port, out)
		}
	}
}

// stop stops the node process, killing it if SIGTERM does not stop it
// within 10 s.
func (s *Server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("Azurite did not stop within 10s after SIGTERM; killed it")
	}
}

// watchdog stops the server if the test binary dies without cleaning up
// (killed, or timed out): a detached shell polls the test process and the
// server, and ends by itself once the server is gone.
func (s *Server) watchdog() error {
	pid := s.cmd.Process.Pid
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do
  kill -0 %d 2>/dev/null || exit 0
  sleep 1
done
kill -TERM %d 2>/dev/null
sleep 5
kill -KILL %d 2>/dev/null
rm -rf %q`, os.Getpid(), pid, pid, pid, s.Dir)
	w := exec.Command("sh", "-c", script)
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start the Azurite watchdog: %w", err)
	}
	go func() { _ = w.Wait() }()
	return nil
}

// Container creates a container with a fresh name and returns the name.
func (s *Server) Container(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "lake-" + hex.EncodeToString(b[:])
	cred, err := container.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("azuritetest: create the container %s: %v", name, err)
	}
	return name
}

// LakeURL is the abfss URL of prefix in container, without settings:
// lake.url of a profile whose lake.endpoint is s.Endpoint.
func LakeURL(container, prefix string) string {
	return fmt.Sprintf("abfss://%s@%s.dfs.core.windows.net/%s", container, Account, prefix)
}

// URL is LakeURL with the settings that reach this server with the key
// in KeyFile, as store.Open and --lake take it.
func (s *Server) URL(container, prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "account_key_file": {s.KeyFile}}
	return LakeURL(container, prefix) + "?" + q.Encode()
}
