// Package pgtest starts throwaway PostgreSQL clusters for tests, from the
// machine's PostgreSQL server binaries (Debian's postgresql package, major 15
// by default; PGTEST_BINDIR overrides the directory).
//
// A cluster lives in a fresh temporary directory, listens on a free TCP port
// on 127.0.0.1 and on a unix socket in that directory, runs with
// wal_level=logical and settings that trade durability for speed (fsync=off,
// synchronous_commit=off), and trusts every local connection except the role
// PasswordRole, which must authenticate with a password over TCP (so tests can
// exercise bad credentials). PostgreSQL refuses to run as root: when the test
// runs as root, the server runs as the "postgres" system user instead.
//
// A missing prerequisite fails the test with what to install; it never skips.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian installs the PostgreSQL 15 server binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// PasswordRole is the role pg_hba.conf makes authenticate with a password
// (scram-sha-256) over TCP; every other connection is trusted. Tests create
// the role themselves with the password they want.
const PasswordRole = "pgtest_pw"

// Superuser is the bootstrap superuser of every cluster.
const Superuser = "postgres"

// Cluster is one running throwaway cluster.
type Cluster struct {
	// BinDir holds the server binaries (initdb, postgres, pgbench,
	// pg_recvlogical, psql...).
	BinDir string
	// Dir is the cluster's temporary directory: data in Dir/data, the unix
	// socket in Dir.
	Dir  string
	Port int

	cmd   *exec.Cmd
	runAs *syscall.Credential
	done  chan error
	args  []string // the server's command line, for Restart
}

// Start starts a cluster for t and stops it when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return StartWith(t)
}

// StartWith starts a cluster for t with server settings ("name=value", such
// as "wal_level=replica") that override the defaults, and stops it when t
// ends.
func StartWith(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	c, err := start(settings...)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

var shared *Cluster

// Main runs a test binary's tests with one cluster shared by all of them
// (see Shared), and exits. Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	c, err := start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Shared returns the cluster Main started. It fails the test when the test
// binary's TestMain does not call Main.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: Shared needs TestMain to call pgtest.Main(m)")
	}
	return shared
}

func binDir() (string, error) {
	dir := os.Getenv("PGTEST_BINDIR")
	if dir == "" {
		dir = DefaultBinDir
	}
	for _, tool := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return "", fmt.Errorf("PostgreSQL server binary %s not found in %s (%w): install Debian's postgresql package (apt-get install postgresql-15) or set PGTEST_BINDIR to the directory holding initdb and postgres", tool, dir, err)
		}
	}
	return dir, nil
}

// serverUser returns the credentials the server runs under: nil when the
// test does not run as root, else the postgres system user's.
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("tests run as root and PostgreSQL refuses root; the postgres system user it would run as is missing (%w): install Debian's postgresql package, or run the tests as a non-root user", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const hba = `local all all trust
host all ` + PasswordRole + ` 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
local replication all trust
host replication ` + PasswordRole + ` 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 trust
`

func start(settings ...string) (c *Cluster, err error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	// The socket path must stay under the 107-byte limit, so the directory
	// lives directly in the system temp dir rather than under t.TempDir().
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c = &Cluster{BinDir: bin, Dir: dir, runAs: cred}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give %s to the postgres user: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.command("initdb", "-D", data, "-U", Superuser, "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb in %s: %w\n%s", data, err, out)
	}
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if cred != nil {
		if err := os.Chown(filepath.Join(data, "pg_hba.conf"), int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give pg_hba.conf to the postgres user: %w", err)
		}
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	args := []string{"-D", data,
		"-p", strconv.Itoa(c.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir,
		"-c", "wal_level=logical",
		"-c", "max_replication_slots=40",
		"-c", "max_wal_senders=40",
		"-c", "max_connections=200",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=64MB",
		"-c", "max_wal_size=1GB",
		"-c", "password_encryption=scram-sha-256",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	c.args = args
	if err := c.run(); err != nil {
		return nil, err
	}
	return c, nil
}

// run starts the server on the cluster's data directory and waits until it
// accepts connections.
func (c *Cluster) run() error {
	c.cmd = c.command("postgres", c.args...)
	logFile, err := os.OpenFile(filepath.Join(c.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close()
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(c.cmd, c.done)
	if err := c.watchdog(); err != nil {
		return err
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	return nil
}

// Restart stops the server (fast mode, as pg_ctl restart does: sessions
// and walsenders are disconnected) and starts it again on the same data,
// port and socket, failing t unless it comes back.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if err := c.shutdown(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
	if err := c.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// shutdown stops the server process (fast mode), killing it if it does not
// stop within 30 s.
func (c *Cluster) shutdown() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	var err error
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		err = errors.New("postgres did not stop within 30s after SIGINT; killed it")
	}
	c.cmd = nil
	return err
}

// watchdog stops the server and removes its directory if the test binary
// dies without cleaning up (killed, or timed out): a detached shell polls
// the test process and the server. It ends by itself once the server is
// gone, so a normal Stop needs nothing from it.
func (c *Cluster) watchdog() error {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do
  kill -0 %d 2>/dev/null || exit 0
  sleep 1
done
kill -INT %d 2>/dev/null
while kill -0 %d 2>/dev/null; do sleep 0.2; done
rm -rf %q`, os.Getpid(), c.cmd.Process.Pid, c.cmd.Process.Pid, c.cmd.Process.Pid, c.Dir)
	w := exec.Command("sh", "-c", script)
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start the cluster watchdog: %w", err)
	}
	go func() { _ = w.Wait() }()
	return nil
}

// command runs a binary of BinDir as the server's user.
func (c *Cluster) command(tool string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.BinDir, tool), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGHOST="+c.Dir)
	if c.Port != 0 {
		cmd.Env = append(cmd.Env, "PGPORT="+strconv.Itoa(c.Port))
	}
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
	}
	return cmd
}

// Command returns a command running tool from BinDir (pgbench,
// pg_recvlogical, psql...) as the server's user, with PGHOST and PGPORT set
// to this cluster. The caller runs it.
func (c *Cluster) Command(tool string, args ...string) *exec.Cmd {
	return c.command(tool, args...)
}

func (c *Cluster) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		cancel()
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case werr := <-c.done:
			return fmt.Errorf("postgres exited during startup: %v", werr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %w", limit, err)
		}
	}
}

// DSN returns a connection string for database db as the superuser, over the
// unix socket.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.Dir, c.Port, Superuser, db)
}

// TCPDSN returns a connection string for database db as role, over TCP,
// without a password.
func (c *Cluster) TCPDSN(db, role string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.Port, role, db)
}

// Exec runs statements in database db as the superuser, failing t on error.
func (c *Cluster) Exec(t testing.TB, db string, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("pgtest: %s: %v", s, err)
		}
	}
}

// CreateDB creates database name and returns its DSN.
func (c *Cluster) CreateDB(t testing.TB, name string) string {
	t.Helper()
	c.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return c.DSN(name)
}

// Stop shuts the server down (fast mode) and removes its directory.
func (c *Cluster) Stop() error {
	var errs []error
	if err := c.shutdown(); err != nil {
		errs = append(errs, err)
	}
	if c.Dir != "" {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.Dir, err))
		}
	}
	return errors.Join(errs...)
}
