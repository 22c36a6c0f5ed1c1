// Package endpoint serves the lake database (internal/sqldb) to network
// clients. It owns what every wire protocol shares: the Endpoint interface,
// the registry protocols register in, the configuration (limits, TLS,
// users) and the rule that an endpoint without users listens on loopback
// only. A protocol lives in a sub-package (pgwire: PostgreSQL's) that
// registers itself in init; it may import sqldb and this package, nothing
// of the writing side (lake writers, sources, the sync engine).
package endpoint

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/sqldb"
)

// Endpoint serves one lake database over one protocol.
type Endpoint interface {
	// Serve accepts connections on l until ctx ends, then closes l and
	// every connection and returns nil once they are gone. Any other
	// return is an error of l.
	Serve(ctx context.Context, l net.Listener) error
}

// Config is what a protocol's Factory gets.
type Config struct {
	// DB is the lake database the clients query; the endpoint does not
	// close it.
	DB *sqldb.DB
	// Name is the database name the endpoint reports (current_database());
	// clients may connect with any database name.
	Name string
	// TLS, when set, is offered to clients that ask for it.
	TLS *tls.Config
	// Users, when set, is who may connect and with which password; nil
	// means anyone without a password, which CheckListen allows on
	// loopback addresses only.
	Users Users
	// Limits bound what clients may use.
	Limits Limits
	// Translate, when set, rewrites each statement before it runs (the
	// T-SQL translation, internal/tsql).
	Translate func(string) (string, error)
	// Logger receives connection errors; nil means slog.Default().
	Logger *slog.Logger
}

// Limits bound the endpoint's use of the machine.
type Limits struct {
	// QueryTimeout ends a query that runs longer (0: no limit).
	QueryTimeout time.Duration
	// MaxRows fails a query whose result has more rows (0: no limit).
	MaxRows int64
	// MaxQueries is how many queries run at once; others wait, up to
	// MaxQueued of them; beyond that a query fails at once with a
	// *BusyError.
	MaxQueries int
	MaxQueued  int
	// MaxConnections bounds the open connections (0: no limit).
	MaxConnections int
}

// DefaultLimits suit the 2-core machines lakelink targets: DuckDB already
// runs one query on every core.
var DefaultLimits = Limits{QueryTimeout: 5 * time.Minute, MaxRows: 10_000_000, MaxQueries: 4, MaxQueued: 64, MaxConnections: 100}

// Users are the accounts of an endpoint: user name -> password.
type Users map[string]string

// Factory builds a protocol's endpoint.
type Factory func(Config) (Endpoint, error)

var registry = struct {
	sync.Mutex
	m map[string]Factory
}{m: map[string]Factory{}}

// Register makes a protocol available to New; protocols call it from init.
// Registering a name twice panics (two packages claim one protocol).
func Register(protocol string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.m[protocol]; ok {
		panic("endpoint: protocol " + protocol + " registered twice")
	}
	registry.m[protocol] = f
}

// Protocols lists the registered protocols, sorted.
func Protocols() []string {
	registry.Lock()
	defer registry.Unlock()
	var names []string
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the endpoint of a registered protocol.
func New(protocol string, cfg Config) (Endpoint, error) {
	registry.Lock()
	f, ok := registry.m[protocol]
	registry.Unlock()
	if !ok {
		return nil, fmt.Errorf("no SQL endpoint protocol %q: the registered ones are %v", protocol, Protocols())
	}
	if cfg.DB == nil {
		return nil, fmt.Errorf("SQL endpoint %s: no lake database", protocol)
	}
	if cfg.Limits.MaxQueries <= 0 {
		return nil, fmt.Errorf("SQL endpoint %s: MaxQueries must be at least 1", protocol)
	}
	return f(cfg)
}

// CheckListen refuses an address that is not loopback when the endpoint
// has no users: without passwords, anyone who reaches the port reads the
// lake.
func CheckListen(addr string, users Users) error {
	if len(users) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not a loopback address, and without a users file (--users) anyone who reaches it could read the lake without a password: listen on 127.0.0.1 or give --users", addr)
	}
	return nil
}

// BusyError is the refusal of a query when MaxQueries run and MaxQueued
// wait already.
type BusyError struct{ Running, Queued int }

func (e *BusyError) Error() string {
	return fmt.Sprintf("the SQL endpoint is busy: %d queries run and %d wait, its limits; try again shortly", e.Running, e.Queued)
}

// Gate bounds the queries that run at once and those that wait for a turn.
type Gate struct {
	slots     chan struct{}
	mu        sync.Mutex
	waiting   int
	maxQueued int
}

// NewGate lets running queries run at once and queued wait.
func NewGate(running, queued int) *Gate {
	return &Gate{slots: make(chan struct{}, running), maxQueued: queued}
}

// Enter waits for a turn (or ctx) and returns the function that ends it;
// when the queue is full it returns a *BusyError at once.
func (g *Gate) Enter(ctx context.Context) (func(), error) {
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	default:
	}
	g.mu.Lock()
	if g.waiting >= g.maxQueued {
		g.mu.Unlock()
		return nil, &BusyError{Running: cap(g.slots), Queued: g.maxQueued}
	}
	g.waiting++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}()
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (g *Gate) leave() { <-g.slots }

// ReadUsers reads a users file: one user:password a line; blank lines and
// lines starting with # are skipped. No file ("") means no users.
func ReadUsers(path string) (Users, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the users file: %w", err)
	}
	defer f.Close()
	users := Users{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		if !ok || name == "" || pw == "" {
			return nil, fmt.Errorf("users file %s, line %d: want user:password", path, n)
		}
		users[name] = pw
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the users file %s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("users file %s names no user", path)
	}
	return users, nil
}
