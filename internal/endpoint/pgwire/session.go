package pgwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lakelink/lakelink/internal/sqldb"
)

// session is one client connection after startup. Messages are handled
// in order on one goroutine; only cancelRunning comes from another.
type session struct {
	srv    *Server
	be     *pgproto3.Backend
	ctx    context.Context
	user   string
	pid    uint32
	secret [4]byte
	params map[string]string // client settings (SET), see settings.go
	inTx   bool              // between BEGIN and COMMIT, which change nothing

	stmts   map[string]*prepared
	portals map[string]*portal
	// skipping: an extended-protocol message failed; the rest up to Sync
	// is ignored, as PostgreSQL does.
	skipping bool

	mu      sync.Mutex
	running context.CancelCauseFunc // the running query's, for cancel requests
}

// prepared is a parsed statement: a lake query (stmt), a COPY of one to the
// client (copy), or a statement the session answers itself (cmd).
type prepared struct {
	stmt   *sqldb.Statement
	copy   *copyOut
	cmd    *command
	params []uint32
	fields []field
}

// portal is a bound statement; rows is its open result while it is
// suspended (Execute with a row limit).
type portal struct {
	p       *prepared
	args    []any
	formats []int16
	rows    *cursor
}

// pgError is an error with its SQLSTATE, as the client gets it.
type pgError struct {
	code, msg, hint string
}

func (e *pgError) Error() string { return e.msg }

var errCanceled = &pgError{code: "57014", msg: "canceling statement due to user request"}

func (s *session) run() error {
	s.stmts, s.portals = map[string]*prepared{}, map[string]*portal{}
	for {
		msg, err := s.be.Receive()
		if err != nil {
			return err
		}
		if _, ok := msg.(*pgproto3.Sync); s.skipping && !ok {
			if _, ok := msg.(*pgproto3.Terminate); !ok {
				continue
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if err := s.simple(m.String); err != nil {
				s.sendError(err)
			}
			s.ready()
		case *pgproto3.Parse:
			err = s.parseMsg(m)
		case *pgproto3.Bind:
			err = s.bind(m)
		case *pgproto3.Describe:
			err = s.describe(m)
		case *pgproto3.Execute:
			err = s.executeMsg(m)
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(s.stmts, m.Name)
			} else {
				s.closePortal(m.Name)
			}
			s.be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			s.skipping = false
			s.closePortal("")
			s.ready()
		case *pgproto3.Flush:
			err = s.be.Flush()
		case *pgproto3.Terminate:
			for name := range s.portals {
				s.closePortal(name)
			}
			return nil
		default:
			err = &pgError{code: "0A000", msg: fmt.Sprintf("the lake database's endpoint does not take the message %T", msg)}
		}
		if err != nil {
			s.sendError(err)
			s.skipping = true
		}
	}
}

func (s *session) ready() {
	status := byte('I')
	if s.inTx {
		status = 'T'
	}
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: status})
	_ = s.be.Flush()
}

// simple runs a Query message: each statement in turn, results in text.
func (s *session) simple(text string) error {
	stmts, err := s.split(text)
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	for _, q := range stmts {
		p, err := s.parse(q, nil)
		if err != nil {
			return err
		}
		pt := &portal{p: p, formats: make([]int16, len(p.fields))}
		if len(p.fields) > 0 && p.copy == nil {
			s.be.Send(rowDescription(p.fields, pt.formats))
		}
		if err := s.execute(pt, 0); err != nil {
			if pt.rows != nil {
				pt.rows.close()
			}
			return err
		}
	}
	return nil
}

func (s *session) parseMsg(m *pgproto3.Parse) error {
	p, err := s.parse(m.Query, m.ParameterOIDs)
	if err != nil {
		return err
	}
	s.stmts[m.Name] = p
	s.be.Send(&pgproto3.ParseComplete{})
	return nil
}

// parse prepares one statement: translated (T-SQL), answered by the
// session (commands.go) or prepared in the lake database.
func (s *session) parse(text string, oids []uint32) (*prepared, error) {
	if tr := s.srv.cfg.Translate; tr != nil {
		var err error
		if text, err = tr(text); err != nil {
			return nil, &pgError{code: "42601", msg: err.Error()}
		}
	}
	if cmd, err := s.command(text); cmd != nil || err != nil {
		if err != nil {
			return nil, err
		}
		p := &prepared{cmd: cmd}
		for _, c := range cmd.cols {
			p.fields = append(p.fields, field{name: c, oid: pgtype.TextOID, typmod: -1, size: -1})
		}
		return p, nil
	}
	p := &prepared{}
	query := text
	if cp, inner, ok, err := parseCopy(text); ok || err != nil {
		if err != nil {
			return nil, err
		}
		p.copy, query = cp, inner
	}
	ctx, end := s.limit()
	defer end()
	st, err := s.srv.cfg.DB.Prepare(ctx, query)
	if err != nil {
		return nil, s.wrap(ctx, err)
	}
	p.stmt = st
	for i, c := range st.Params {
		oid, _ := oidOf(c.Type)
		if c.Type == "" {
			oid = pgtype.TextOID
		}
		if i < len(oids) && oids[i] != 0 {
			oid = oids[i]
		}
		p.params = append(p.params, oid)
	}
	for _, c := range st.Columns {
		p.fields = append(p.fields, fieldOf(c))
	}
	return p, nil
}

func (s *session) bind(m *pgproto3.Bind) error {
	p, ok := s.stmts[m.PreparedStatement]
	if !ok {
		return &pgError{code: "26000", msg: fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement)}
	}
	if len(m.Parameters) != len(p.params) {
		return &pgError{code: "08P01", msg: fmt.Sprintf("bind message supplies %d parameters, but prepared statement %q requires %d", len(m.Parameters), m.PreparedStatement, len(p.params))}
	}
	args := make([]any, len(m.Parameters))
	for i, v := range m.Parameters {
		format := formatAt(m.ParameterFormatCodes, i)
		a, err := decodeParam(p.params[i], format, v)
		if err != nil {
			return &pgError{code: "22P03", msg: fmt.Sprintf("parameter $%d: %v", i+1, err)}
		}
		args[i] = a
	}
	formats := make([]int16, len(p.fields))
	for i, f := range p.fields {
		formats[i] = formatAt(m.ResultFormatCodes, i)
		if formats[i] == pgtype.BinaryFormatCode && !binaryOK(f) {
			formats[i] = pgtype.TextFormatCode
		}
	}
	s.closePortal(m.DestinationPortal)
	s.portals[m.DestinationPortal] = &portal{p: p, args: args, formats: formats}
	s.be.Send(&pgproto3.BindComplete{})
	return nil
}

// formatAt is the format code of item i: none given means text, one
// applies to all.
func formatAt(codes []int16, i int) int16 {
	switch {
	case len(codes) == 0:
		return pgtype.TextFormatCode
	case len(codes) == 1:
		return codes[0]
	case i < len(codes):
		return codes[i]
	}
	return pgtype.TextFormatCode
}

func (s *session) describe(m *pgproto3.Describe) error {
	var (
		p       *prepared
		formats []int16
	)
	if m.ObjectType == 'S' {
		var ok bool
		if p, ok = s.stmts[m.Name]; !ok {
			return &pgError{code: "26000", msg: fmt.Sprintf("prepared statement %q does not exist", m.Name)}
		}
		s.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: p.params})
	} else {
		pt, ok := s.portals[m.Name]
		if !ok {
			return &pgError{code: "34000", msg: fmt.Sprintf("portal %q does not exist", m.Name)}
		}
		p, formats = pt.p, pt.formats
	}
	if len(p.fields) == 0 || p.copy != nil {
		s.be.Send(&pgproto3.NoData{})
		return nil
	}
	s.be.Send(rowDescription(p.fields, formats))
	return nil
}

func rowDescription(fields []field, formats []int16) *pgproto3.RowDescription {
	rd := &pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(fields))}
	for i, f := range fields {
		rd.Fields[i] = pgproto3.FieldDescription{Name: []byte(f.name), DataTypeOID: f.oid, DataTypeSize: f.size, TypeModifier: f.typmod, Format: formatAt(formats, i)}
		if formats == nil {
			rd.Fields[i].Format = pgtype.TextFormatCode
		}
	}
	return rd
}

func (s *session) executeMsg(m *pgproto3.Execute) error {
	pt, ok := s.portals[m.Portal]
	if !ok {
		return &pgError{code: "34000", msg: fmt.Sprintf("portal %q does not exist", m.Portal)}
	}
	err := s.execute(pt, int64(m.MaxRows))
	if err != nil {
		s.closePortal(m.Portal)
	}
	return err
}

func (s *session) closePortal(name string) {
	if pt, ok := s.portals[name]; ok {
		if pt.rows != nil {
			pt.rows.close()
		}
		delete(s.portals, name)
	}
}

// limit is the context of one query: the session's, ended by a cancel
// request (errCanceled) or the query timeout.
func (s *session) limit() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	stop := func() {}
	if t := s.srv.cfg.Limits.QueryTimeout; t > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeoutCause(ctx, t, &pgError{code: "57014", msg: fmt.Sprintf("canceling statement due to statement timeout: the SQL endpoint ends queries after %s (sql-server --query-timeout)", t)})
		stop = c
	}
	s.mu.Lock()
	s.running = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
		stop()
		cancel(nil)
	}
}

func (s *session) cancelRunning() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		s.running(errCanceled)
	}
}

// execute runs a portal up to max rows (0: all), sending its rows and its
// CommandComplete, or PortalSuspended when rows remain.
func (s *session) execute(pt *portal, max int64) error {
	p := pt.p
	if p.cmd != nil {
		return s.runCommand(p, pt.formats)
	}
	if pt.rows == nil {
		c, err := s.open(p, pt.args)
		if err != nil {
			return err
		}
		pt.rows = c
	}
	c := pt.rows
	if p.copy != nil {
		pt.rows = nil
		return s.copyTo(c, p.copy)
	}
	limit := s.srv.cfg.Limits.MaxRows
	var buf []byte
	values := make([][]byte, len(p.fields))
	sent := int64(0)
	for max <= 0 || sent < max {
		ok, err := c.next()
		if err != nil {
			return err
		}
		if !ok {
			tag := "SELECT " + strconv.FormatInt(c.n, 10)
			c.close()
			pt.rows = nil
			s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
			return nil
		}
		if limit > 0 && c.n > limit {
			return &pgError{code: "54000", msg: fmt.Sprintf("the result has more than %d rows, the SQL endpoint's limit (sql-server --max-rows)", limit), hint: "add a LIMIT, or narrow the query with WHERE"}
		}
		buf = buf[:0]
		ends := make([]int, len(p.fields))
		for i, v := range c.vals {
			if v == nil {
				ends[i] = -1
				continue
			}
			if pt.formats[i] == pgtype.BinaryFormatCode {
				buf, err = appendBinary(buf, v, p.fields[i])
			} else {
				buf, err = appendText(buf, v, p.fields[i])
			}
			if err != nil {
				return err
			}
			ends[i] = len(buf)
		}
		start := 0
		for i, e := range ends {
			if e < 0 {
				values[i] = nil
				continue
			}
			values[i] = buf[start:e:e]
			start = e
		}
		s.be.Send(&pgproto3.DataRow{Values: values})
		sent++
		if c.n%256 == 0 {
			// Rows stream: the backend buffers messages until Flush.
			if err := s.be.Flush(); err != nil {
				return err
			}
		}
	}
	s.be.Send(&pgproto3.PortalSuspended{})
	return nil
}

// cursor is a running query's result.
type cursor struct {
	rows   *sql.Rows
	fields []field
	ctx    context.Context
	end    func()
	vals   []any
	ptrs   []any
	n      int64
	s      *session
}

// open starts p's query with args: it waits for a turn (endpoint.Gate)
// and checks that the result still has the columns Describe reported.
func (s *session) open(p *prepared, args []any) (*cursor, error) {
	ctx, end := s.limit()
	leave, err := s.srv.gate.Enter(ctx)
	if err != nil {
		end()
		return nil, s.wrap(ctx, err)
	}
	stop := func() { leave(); end() }
	rows, err := p.stmt.Query(ctx, args...)
	if err != nil {
		stop()
		return nil, s.wrap(ctx, err)
	}
	cols, err := rows.Columns()
	if err == nil && len(cols) != len(p.fields) {
		err = &pgError{code: "0A000", msg: "cached plan must not change result type: a commit changed the columns of a table this statement reads; prepare it again"}
	}
	if err != nil {
		rows.Close()
		stop()
		return nil, s.wrap(ctx, err)
	}
	c := &cursor{rows: rows, fields: p.fields, ctx: ctx, end: stop, vals: make([]any, len(cols)), ptrs: make([]any, len(cols)), s: s}
	for i := range c.vals {
		c.ptrs[i] = &c.vals[i]
	}
	return c, nil
}

func (c *cursor) next() (bool, error) {
	if !c.rows.Next() {
		err := c.rows.Err()
		if err != nil {
			return false, c.s.wrap(c.ctx, err)
		}
		return false, nil
	}
	if err := c.rows.Scan(c.ptrs...); err != nil {
		return false, c.s.wrap(c.ctx, fmt.Errorf("read a result row: %w", err))
	}
	c.n++
	return true, nil
}

// close ends the query; a second call does nothing.
func (c *cursor) close() {
	if c.end == nil {
		return
	}
	c.rows.Close()
	c.end()
	c.end = nil
}

// wrap gives err its SQLSTATE; a query ended by ctx reports why.
func (s *session) wrap(ctx context.Context, err error) error {
	var pe *pgError
	if ctx != nil && ctx.Err() != nil && errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	return err
}

func (s *session) sendError(err error) {
	pe := toPGError(err)
	s.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: pe.code, Message: pe.msg, Hint: pe.hint})
}
