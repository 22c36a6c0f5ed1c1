package pgwire

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lakelink/lakelink/internal/tsql"
)

// command is a statement the session answers itself: its result columns
// (text; none for SET and BEGIN), and run, which applies it and returns the
// rows. tag is the CommandComplete tag ("" for "SELECT <rows>").
type command struct {
	tag  string
	cols []string
	run  func(*session) ([][]*string, error)
}

// reportedParams are the settings sent at startup (ParameterStatus), as
// PostgreSQL does; standard_conforming_strings=on is what lets pgx's
// simple protocol quote strings.
var reportedParams = []string{
	"server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone", "integer_datetimes",
	"standard_conforming_strings", "IntervalStyle", "is_superuser", "session_authorization", "application_name",
	"default_transaction_read_only", "in_hot_standby",
}

// serverVersion is the PostgreSQL version the endpoint reports: psql and
// the tools pick their catalog queries by it.
const serverVersion = "15.0"

// settings are the values of SHOW, by lower-case name.
var settings = map[string]string{
	"server_version": serverVersion, "server_version_num": "150000", "server_encoding": "UTF8",
	"client_encoding": "UTF8", "datestyle": "ISO, MDY", "timezone": "UTC", "integer_datetimes": "on",
	"standard_conforming_strings": "on", "intervalstyle": "postgres", "is_superuser": "off",
	"application_name": "", "default_transaction_read_only": "on", "transaction_read_only": "on",
	"in_hot_standby": "off", "transaction_isolation": "repeatable read",
	"default_transaction_isolation": "repeatable read", "search_path": "main", "extra_float_digits": "1",
	"statement_timeout": "0", "lock_timeout": "0", "idle_in_transaction_session_timeout": "0",
	"max_identifier_length": "63", "lc_collate": "C", "lc_ctype": "C", "lc_messages": "C",
	"bytea_output": "hex", "client_min_messages": "notice", "row_security": "on", "jit": "off",
	"max_connections": "100", "block_size": "8192", "default_transaction_deferrable": "off",
	"backslash_quote": "safe_encoding", "escape_string_warning": "on", "synchronous_commit": "on",
	"geqo": "on", "work_mem": "4MB",
}

// fixed are the settings a client may SET only to the value they have
// (any case and spelling of it), since the lake database has no other.
var fixed = map[string][]string{
	"client_encoding":               {"utf8", "utf-8", "unicode"},
	"timezone":                      {"utc", "etc/utc", "gmt", "z", "+00", "0", "00:00"},
	"datestyle":                     {"iso", "iso, mdy", "iso,mdy", "iso, ymd", "iso,ymd", "iso, dmy", "iso,dmy"},
	"intervalstyle":                 {"postgres"},
	"standard_conforming_strings":   {"on", "true"},
	"bytea_output":                  {"hex"},
	"default_transaction_read_only": {"on", "true"},
	"transaction_read_only":         {"on", "true"},
}

// settable are the client settings a SET changes (they change only what
// SHOW reports: the lake database's own configuration is locked).
var settable = map[string]bool{
	"application_name": true, "extra_float_digits": true, "search_path": true, "statement_timeout": true,
	"lock_timeout": true, "idle_in_transaction_session_timeout": true, "client_min_messages": true,
	"lc_messages": true, "jit": true, "geqo": true, "work_mem": true, "synchronous_commit": true,
	"transaction_isolation": true, "default_transaction_isolation": true, "row_security": true,
	"escape_string_warning": true, "default_transaction_deferrable": true,
}

func clientParams(startup map[string]string) map[string]string {
	p := map[string]string{}
	for k, v := range startup {
		k = strings.ToLower(k)
		if settable[k] {
			p[k] = v
		}
	}
	return p
}

// setting is the value SHOW gives for name.
func (s *session) setting(name string) string {
	k := strings.ToLower(name)
	if v, ok := s.params[k]; ok {
		return v
	}
	if k == "session_authorization" {
		return s.user
	}
	return settings[k]
}

func (s *session) split(text string) ([]string, error) {
	stmts, err := tsql.Split(text)
	if err != nil {
		return nil, &pgError{code: "42601", msg: err.Error()}
	}
	return stmts, nil
}

// command returns the command text is, or nil when it is a statement for
// the lake database (which refuses what is not a SELECT).
func (s *session) command(text string) (*command, error) {
	ws, err := tsql.Words(text)
	if err != nil {
		return nil, &pgError{code: "42601", msg: err.Error()}
	}
	if len(ws) == 0 {
		return nil, nil
	}
	kw := func(i int) string {
		if i < len(ws) {
			return ws[i].Upper()
		}
		return ""
	}
	tagOnly := func(tag string, apply func()) *command {
		return &command{tag: tag, run: func(*session) ([][]*string, error) {
			if apply != nil {
				apply()
			}
			return nil, nil
		}}
	}
	switch kw(0) {
	case "BEGIN", "START":
		if kw(0) == "START" && kw(1) != "TRANSACTION" {
			return nil, nil
		}
		return tagOnly("BEGIN", func() { s.inTx = true }), nil
	case "COMMIT", "END":
		return tagOnly("COMMIT", func() { s.inTx = false }), nil
	case "ROLLBACK", "ABORT":
		return tagOnly("ROLLBACK", func() { s.inTx = false }), nil
	case "DISCARD":
		return tagOnly("DISCARD ALL", nil), nil
	case "DEALLOCATE":
		name := ws[len(ws)-1]
		return tagOnly("DEALLOCATE", func() {
			if strings.EqualFold(name.Text, "ALL") {
				clear(s.stmts)
			} else {
				delete(s.stmts, name.Value())
			}
		}), nil
	case "UNLISTEN":
		return tagOnly("UNLISTEN", nil), nil
	case "SHOW":
		return s.show(ws[1:])
	case "SET":
		return s.set(ws[1:])
	case "RESET":
		if len(ws) == 2 {
			name := strings.ToLower(ws[1].Value())
			if name == "all" {
				return tagOnly("RESET", func() { clear(s.params) }), nil
			}
			if settable[name] || fixed[name] != nil {
				return tagOnly("RESET", func() { delete(s.params, name) }), nil
			}
		}
	}
	return nil, nil
}

// show answers SHOW of a PostgreSQL setting; other SHOW statements (SHOW
// TABLES) are the lake database's.
func (s *session) show(ws []tsql.Word) (*command, error) {
	var name string
	switch {
	case len(ws) == 1:
		name = strings.ToLower(ws[0].Value())
	case len(ws) == 3 && ws[0].Upper() == "TRANSACTION" && ws[1].Upper() == "ISOLATION" && ws[2].Upper() == "LEVEL":
		name = "transaction_isolation"
	case len(ws) == 2 && ws[0].Upper() == "TIME" && ws[1].Upper() == "ZONE":
		name = "timezone"
	default:
		return nil, nil
	}
	if _, ok := settings[name]; !ok && name != "session_authorization" {
		return nil, nil
	}
	return &command{tag: "SHOW", cols: []string{name}, run: func(s *session) ([][]*string, error) {
		v := s.setting(name)
		return [][]*string{{&v}}, nil
	}}, nil
}

// set applies SET of a client setting; SET of anything else goes to the
// lake database, which refuses it (its configuration is locked).
func (s *session) set(ws []tsql.Word) (*command, error) {
	if len(ws) > 0 && (ws[0].Upper() == "SESSION" || ws[0].Upper() == "LOCAL") {
		ws = ws[1:]
		if len(ws) > 0 && ws[0].Upper() == "CHARACTERISTICS" {
			return &command{tag: "SET", run: func(*session) ([][]*string, error) { return nil, nil }}, nil
		}
	}
	if len(ws) == 0 {
		return nil, nil
	}
	var name string
	var vals []tsql.Word
	switch {
	case ws[0].Upper() == "TRANSACTION":
		// SET TRANSACTION ISOLATION LEVEL ..., READ ONLY: every query is
		// read-only and sees one commit.
		return &command{tag: "SET", run: func(*session) ([][]*string, error) { return nil, nil }}, nil
	case len(ws) > 2 && ws[0].Upper() == "TIME" && ws[1].Upper() == "ZONE":
		name, vals = "timezone", ws[2:]
	case ws[0].Upper() == "NAMES":
		name, vals = "client_encoding", ws[1:]
	case len(ws) > 2 && (ws[1].Upper() == "TO" || ws[1].Text == "="):
		name, vals = strings.ToLower(ws[0].Value()), ws[2:]
	default:
		return nil, nil
	}
	var parts []string
	for _, v := range vals {
		if v.Text != "," {
			parts = append(parts, v.Value())
		}
	}
	value := strings.Join(parts, ", ")
	isDefault := len(vals) == 1 && vals[0].Upper() == "DEFAULT"
	if allowed, ok := fixed[name]; ok {
		if !isDefault && !contains(allowed, strings.ToLower(value)) {
			return nil, &pgError{code: "22023", msg: fmt.Sprintf("SET %s = %q is not possible: the lake database has %s = %q only", name, value, name, settings[name])}
		}
		return &command{tag: "SET", run: func(*session) ([][]*string, error) { return nil, nil }}, nil
	}
	if !settable[name] {
		return nil, nil
	}
	return &command{tag: "SET", run: func(s *session) ([][]*string, error) {
		if isDefault {
			delete(s.params, name)
		} else {
			s.params[name] = value
		}
		return nil, nil
	}}, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *session) runCommand(p *prepared, formats []int16) error {
	rows, err := p.cmd.run(s)
	if err != nil {
		return err
	}
	for _, r := range rows {
		values := make([][]byte, len(r))
		for i, v := range r {
			if v != nil {
				values[i] = []byte(*v)
			}
		}
		s.be.Send(&pgproto3.DataRow{Values: values})
	}
	tag := p.cmd.tag
	if tag == "" {
		tag = "SELECT " + strconv.Itoa(len(rows))
	}
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

// copyOut is COPY (SELECT ...) TO STDOUT: the rows go to the client, in
// PostgreSQL's text format or CSV.
type copyOut struct {
	csv    bool
	header bool
	delim  byte
}

// parseCopy recognises COPY (<query>) TO STDOUT and COPY <table> TO STDOUT
// with the options psql's \copy passes (FORMAT, CSV, HEADER, DELIMITER),
// returning the query whose rows go out. Other COPY statements are not a
// copy (ok false): the lake database refuses them.
func parseCopy(text string) (c *copyOut, query string, ok bool, err error) {
	ws, err := tsql.Words(text)
	if err != nil || len(ws) < 4 || ws[0].Upper() != "COPY" {
		return nil, "", false, nil
	}
	i := 1
	if ws[1].Text == "(" {
		depth := 0
		for ; i < len(ws); i++ {
			switch ws[i].Text {
			case "(":
				depth++
			case ")":
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(ws) {
			return nil, "", false, nil
		}
		query = text[ws[1].End:ws[i].Start]
		i++
	} else {
		j := i
		for j < len(ws) && ws[j].Upper() != "TO" && ws[j].Text != "(" {
			j++
		}
		if j < len(ws) && ws[j].Text == "(" {
			return nil, "", false, &pgError{code: "0A000", msg: "COPY of a column list is not supported: write COPY (SELECT <columns> FROM <table>) TO STDOUT"}
		}
		query = "SELECT * FROM " + text[ws[i].Start:ws[j-1].End]
		i = j
	}
	if i+1 >= len(ws) || ws[i].Upper() != "TO" || ws[i+1].Upper() != "STDOUT" {
		return nil, "", false, nil
	}
	c = &copyOut{delim: '\t'}
	delimSet := false
	for i += 2; i < len(ws); i++ {
		switch w := ws[i]; {
		case w.Text == "(" || w.Text == ")" || w.Text == "," || w.Upper() == "WITH":
		case w.Upper() == "FORMAT" && i+1 < len(ws):
			i++
			switch strings.ToLower(ws[i].Value()) {
			case "csv":
				c.csv = true
			case "text":
			default:
				return nil, "", false, &pgError{code: "0A000", msg: fmt.Sprintf("COPY ... TO STDOUT (FORMAT %s) is not supported: use text or csv", ws[i].Value())}
			}
		case w.Upper() == "CSV":
			c.csv = true
		case w.Upper() == "HEADER":
			c.header = true
			if i+1 < len(ws) && (ws[i+1].Upper() == "TRUE" || ws[i+1].Upper() == "ON") {
				i++
			}
		case (w.Upper() == "DELIMITER") && i+1 < len(ws):
			i++
			d := ws[i].Value()
			if len(d) != 1 {
				return nil, "", false, &pgError{code: "22023", msg: "COPY delimiter must be a single one-byte character"}
			}
			c.delim, delimSet = d[0], true
		default:
			return nil, "", false, &pgError{code: "0A000", msg: fmt.Sprintf("COPY ... TO STDOUT option %s is not supported: FORMAT text|csv, HEADER and DELIMITER are", w.Text)}
		}
	}
	if c.csv && !delimSet {
		c.delim = ','
	}
	return c, query, true, nil
}

// copyTo sends the cursor's rows as CopyData messages.
func (s *session) copyTo(c *cursor, cp *copyOut) error {
	defer c.close()
	s.be.Send(&pgproto3.CopyOutResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, len(c.fields))})
	var line []byte
	if cp.header {
		for i, f := range c.fields {
			if i > 0 {
				line = append(line, cp.delim)
			}
			line = appendCopyField(line, []byte(f.name), cp)
		}
		line = append(line, '\n')
		s.be.Send(&pgproto3.CopyData{Data: line})
	}
	var val []byte
	for {
		ok, err := c.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		line = line[:0]
		for i, v := range c.vals {
			if i > 0 {
				line = append(line, cp.delim)
			}
			if v == nil {
				if !cp.csv {
					line = append(line, `\N`...)
				}
				continue
			}
			if val, err = appendText(val[:0], v, c.fields[i]); err != nil {
				return err
			}
			line = appendCopyField(line, val, cp)
		}
		line = append(line, '\n')
		s.be.Send(&pgproto3.CopyData{Data: line})
		if c.n%256 == 0 {
			if err := s.be.Flush(); err != nil {
				return err
			}
		}
	}
	s.be.Send(&pgproto3.CopyDone{})
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.FormatInt(c.n, 10))})
	return nil
}

// appendCopyField appends one value in COPY's text format (backslash
// escapes) or CSV (quoted when needed).
func appendCopyField(line, v []byte, cp *copyOut) []byte {
	if cp.csv {
		if !strings.ContainsAny(string(v), string(cp.delim)+"\"\r\n") && len(v) > 0 {
			return append(line, v...)
		}
		line = append(line, '"')
		for _, b := range v {
			if b == '"' {
				line = append(line, '"')
			}
			line = append(line, b)
		}
		return append(line, '"')
	}
	for _, b := range v {
		switch b {
		case '\\':
			line = append(line, `\\`...)
		case '\n':
			line = append(line, `\n`...)
		case '\r':
			line = append(line, `\r`...)
		case '\t':
			line = append(line, `\t`...)
		default:
			if b == cp.delim {
				line = append(line, '\\')
			}
			line = append(line, b)
		}
	}
	return line
}
