// Package pgwire is the lake database's PostgreSQL endpoint: the v3 wire
// protocol (pgx's pgproto3 for the messages) in front of internal/sqldb.
// It registers as the endpoint protocol "postgres".
//
// What runs is sqldb's read-only SELECT (its guard refuses the rest); in
// front of it the session answers what PostgreSQL clients send that is
// not a lake query: SET and SHOW of client settings, BEGIN/COMMIT (a query
// already sees one commit) and COPY (SELECT ...) TO STDOUT (commands.go).
package pgwire

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lakelink/lakelink/internal/endpoint"
)

func init() {
	endpoint.Register("postgres", func(cfg endpoint.Config) (endpoint.Endpoint, error) { return New(cfg), nil })
}

// Server is the PostgreSQL endpoint.
type Server struct {
	cfg  endpoint.Config
	log  *slog.Logger
	gate *endpoint.Gate

	mu       sync.Mutex
	sessions map[uint32]*session // by process id, for cancel requests
	nextPID  uint32
}

// New returns the endpoint for cfg (cfg.Limits.MaxQueries >= 1).
func New(cfg endpoint.Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log, gate: endpoint.NewGate(cfg.Limits.MaxQueries, cfg.Limits.MaxQueued), sessions: map[uint32]*session{}, nextPID: 1}
}

// Serve implements endpoint.Endpoint.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept a SQL endpoint connection on %s: %w", l.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The connection ends with the server.
			done := make(chan struct{})
			defer close(done)
			go func() {
				select {
				case <-ctx.Done():
					conn.Close()
				case <-done:
				}
			}()
			if err := s.handle(ctx, conn); err != nil && ctx.Err() == nil {
				s.log.Debug("SQL endpoint connection", "remote", conn.RemoteAddr(), "err", err)
			}
		}()
	}
}

// handle runs one connection: startup (TLS, cancel requests,
// authentication), then the session.
func (s *Server) handle(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	var c net.Conn = conn
	be := pgproto3.NewBackend(bufio.NewReader(c), c)
	secure := false
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return fmt.Errorf("read the startup message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if s.cfg.TLS == nil || secure {
				if _, err := c.Write([]byte{'N'}); err != nil {
					return err
				}
				continue
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return err
			}
			tc := tls.Server(c, s.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("TLS handshake: %w", err)
			}
			c, secure = tc, true
			be = pgproto3.NewBackend(bufio.NewReader(c), c)
		case *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return err
			}
		case *pgproto3.CancelRequest:
			s.cancel(m.ProcessID, m.SecretKey)
			return nil
		case *pgproto3.StartupMessage:
			return s.session(ctx, c, be, m, secure)
		default:
			return fmt.Errorf("unexpected startup message %T", msg)
		}
	}
}

// session authenticates the client and runs its session.
func (s *Server) session(ctx context.Context, c net.Conn, be *pgproto3.Backend, m *pgproto3.StartupMessage, secure bool) error {
	user := m.Parameters["user"]
	fail := func(code, msg string) error {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: msg})
		_ = be.Flush()
		return errors.New(msg)
	}
	if s.cfg.Users != nil {
		if err := s.authenticate(be, user, secure); err != nil {
			return fail("28P01", err.Error())
		}
	}
	sess := &session{srv: s, be: be, ctx: ctx, user: user, params: clientParams(m.Parameters)}
	if err := s.register(sess); err != nil {
		return fail("53300", err.Error())
	}
	defer s.unregister(sess)
	be.Send(&pgproto3.AuthenticationOk{})
	for _, k := range reportedParams {
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: sess.setting(k)})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: sess.pid, SecretKey: sess.secret[:]})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	return sess.run()
}

// authenticate asks for the user's password: cleartext, which only a TLS
// connection may send (SCRAM is not offered yet: #14).
func (s *Server) authenticate(be *pgproto3.Backend, user string, secure bool) error {
	if !secure {
		return errors.New("this endpoint takes passwords over TLS only: connect with sslmode=require")
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := be.Flush(); err != nil {
		return err
	}
	if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	want, known := s.cfg.Users[user]
	if !ok || !known || subtle.ConstantTimeCompare([]byte(pw.Password), []byte(want)) != 1 {
		return fmt.Errorf("password authentication failed for user %q", user)
	}
	return nil
}

// register gives sess its process id and cancel key.
func (s *Server) register(sess *session) error {
	if _, err := rand.Read(sess.secret[:]); err != nil {
		return fmt.Errorf("make a cancel key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.cfg.Limits.MaxConnections; n > 0 && len(s.sessions) >= n {
		return fmt.Errorf("sorry, too many clients already: the SQL endpoint takes %d connections", n)
	}
	for s.sessions[s.nextPID] != nil || s.nextPID == 0 {
		s.nextPID++
	}
	sess.pid = s.nextPID
	s.nextPID++
	s.sessions[sess.pid] = sess
	return nil
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess.pid)
}

// cancel ends the running query of the session pid when key is its key.
func (s *Server) cancel(pid uint32, key []byte) {
	s.mu.Lock()
	sess := s.sessions[pid]
	s.mu.Unlock()
	if sess == nil || subtle.ConstantTimeCompare(key, sess.secret[:]) != 1 {
		return
	}
	sess.cancelRunning()
}
