package serve

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Role is what a token may do: an admin everything, a reader view status
// and run SQL.
type Role string

// Roles. RoleNone marks the routes open to anyone (health, the OpenAPI
// document).
const (
	RoleNone   Role = ""
	RoleReader Role = "reader"
	RoleAdmin  Role = "admin"
)

func (r Role) level() int {
	switch r {
	case RoleAdmin:
		return 2
	case RoleReader:
		return 1
	}
	return 0
}

// allows reports whether a token of role r may call a route that needs
// need.
func (r Role) allows(need Role) bool { return r.level() >= need.level() }

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleReader:
		return Role(s), nil
	}
	return "", fmt.Errorf("role %q: use admin or reader", s)
}

// identity is who made a request.
type identity struct {
	Name string
	Role Role
}

type identityKey struct{}

func identityOf(r *http.Request) identity {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id
}

// tokenPrefix starts every token, so that a leaked one is recognisable
// (secret scanners) and a hash is never taken for a token.
const tokenPrefix = "llk_"

// tokenFile is the file of hashed tokens: one line per token,
// "<role> <name> sha256:<hex of SHA-256 of the token>", # comments. The
// tokens are 32 random bytes, so a plain SHA-256 cannot be reversed by
// guessing. It is read again whenever it changes, so a token created or
// removed takes effect without a restart.
type tokenFile struct {
	path string

	mu     sync.Mutex
	mod    time.Time
	size   int64
	byHash map[[32]byte]identity
}

func loadTokens(path string) (*tokenFile, error) {
	t := &tokenFile{path: path}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the file if it changed since the last read. t.mu is held
// or t is not shared yet.
func (t *tokenFile) reload() error {
	st, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w (create one with lakelink token create --role admin --file %s)", err, t.path)
	}
	if st.ModTime().Equal(t.mod) && st.Size() == t.size && t.byHash != nil {
		return nil
	}
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	by := map[[32]byte]identity{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 || !strings.HasPrefix(fs[2], "sha256:") {
			return fmt.Errorf("%s:%d: want \"<role> <name> sha256:<hex>\" (lines are written by lakelink token create)", t.path, n)
		}
		role, err := ParseRole(fs[0])
		if err != nil {
			return fmt.Errorf("%s:%d: %w", t.path, n, err)
		}
		h, err := hex.DecodeString(strings.TrimPrefix(fs[2], "sha256:"))
		if err != nil || len(h) != 32 {
			return fmt.Errorf("%s:%d: the hash is not 64 hex digits", t.path, n)
		}
		by[[32]byte(h)] = identity{Name: fs[1], Role: role}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	t.byHash, t.mod, t.size = by, st.ModTime(), st.Size()
	return nil
}

// lookup returns the identity of a presented token.
func (t *tokenFile) lookup(tok string) (identity, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil && t.byHash == nil {
		return identity{}, false
	}
	// The lookup is by the token's hash: its timing says nothing about
	// the tokens themselves.
	id, ok := t.byHash[sha256.Sum256([]byte(tok))]
	return id, ok
}

// CreateToken makes a token of role for name, appends its hash to file
// (created 0600 if missing) and returns the token, which is shown once
// and stored nowhere.
func CreateToken(file string, role Role, name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("token name %q: use letters, digits, _ and -", name)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(tok))
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("tokens file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s %s sha256:%s\n", role, name, hex.EncodeToString(sum[:])); err != nil {
		f.Close()
		return "", fmt.Errorf("tokens file %s: %w", file, err)
	}
	return tok, f.Close()
}

// bearer returns the request's bearer token, "" when none.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// audit appends one JSON line per change (every request that is not a
// read, whether it was allowed or not) to the audit log.
type audit struct {
	mu sync.Mutex
	f  *os.File
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Role   Role      `json:"role,omitempty"`
	Remote string    `json:"remote"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
}

func openAudit(path string) (*audit, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &audit{f: f}, nil
}

func (a *audit) write(e AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err = a.f.Write(append(b, '\n'))
	return err
}

func (a *audit) close() error { return a.f.Close() }

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets server-sent events through the recorder.
func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// guard wraps a route's handler with access control and the audit log.
func (s *Service) guard(need Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identity{Name: "anonymous", Role: RoleAdmin}
		rec := &statusRecorder{ResponseWriter: w}
		change := r.Method != http.MethodGet && r.Method != http.MethodHead
		if change {
			defer func() {
				e := AuditEntry{Time: time.Now().UTC(), Who: id.Name, Role: id.Role, Remote: s.remote(r), Method: r.Method, Path: r.URL.RequestURI(), Status: rec.status}
				if err := s.audit.write(e); err != nil {
					s.log.Error("audit log: write failed", "err", err)
				}
			}()
		}
		if need != RoleNone && s.tokens != nil {
			tok := bearer(r)
			var ok bool
			id, ok = identity{Name: "anonymous"}, false
			if tok != "" {
				id, ok = s.tokens.lookup(tok)
				if !ok {
					id = identity{Name: "invalid-token"}
				}
			}
			if !ok {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="lakelink"`)
				writeProblem(rec, r, problem(errUnauthorized, "send Authorization: Bearer <token> (lakelink token create --role reader)"))
				return
			}
			if !id.Role.allows(need) {
				writeProblem(rec, r, problem(errForbidden, "token %s has role %s; this needs %s", id.Name, id.Role, need))
				return
			}
		}
		h(rec, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}

// remote is the client's address: the proxy's X-Forwarded-For with
// --trust-proxy, the connection's peer otherwise.
func (s *Service) remote(r *http.Request) string {
	if s.opts.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			return strings.TrimSpace(strings.Split(xff, ",")[0])
		}
	}
	return r.RemoteAddr
}

// IsLoopback reports whether a listen address binds loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errNoAuth is the refusal to listen beyond loopback without tokens.
var errNoAuth = errors.New("access control is off: serve listens without tokens on a loopback address only")
