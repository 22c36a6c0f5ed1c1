package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"unicode"

	"github.com/duckdb/duckdb-go/v2"
)

// The lake database is read-only for the SQL it is given (issue #15, case
// 16): a statement written into the lake's commit log would stop every
// reader and the running sync. Two layers keep it so.
//
//  1. DuckDB's own configuration, locked once the database is set up: it
//     reads and writes files only under the lake root, the Parquet cache
//     directory and its spill directory (enable_external_access = false with
//     allowed_directories), loads no extension, and no SET can undo that
//     (lock_configuration). It keeps queries from reading /etc/passwd or
//     attaching another database, but allows writes under the lake root,
//     which the views and the cache need to read.
//  2. A check of every statement Query runs: exactly one SELECT statement
//     (as DuckDB's parser sees it: json_serialize_sql serialises SELECT
//     statements only), which calls no function that changes the database's
//     configuration or runs SQL given as a value. A SELECT cannot write a
//     file otherwise.
//
// The lake database's own statements (views, the cache's conversions) do
// not go through Query, only through layer 1.

// NotAllowedError is the refusal of a statement the read-only lake database
// does not run. Nothing of the statement ran.
type NotAllowedError struct {
	// What names what is refused ("COPY", "more than one statement", "the
	// function enable_logging").
	What string
	// Why says why, and what to do instead.
	Why string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("%s is not allowed in the lake database (lakelink query is read-only): %s", e.What, e.Why)
}

// lockDown is the configuration that makes the database read-only and keeps
// it inside dirs; it runs after every other setting, since
// lock_configuration refuses any later SET (a connection's too: the time
// zone is set globally for that reason). DuckDB also allows its
// temp_directory.
func lockDown(dirs []string) []string {
	allowed := make([]string, len(dirs))
	for i, d := range dirs {
		// A trailing separator: "/data/lake" must not allow "/data/lake2".
		allowed[i] = quoteString(strings.TrimSuffix(d, string(filepath.Separator)) + string(filepath.Separator))
	}
	return []string{
		"SET allowed_directories = [" + strings.Join(allowed, ", ") + "]",
		"SET enable_external_access = false",
		"SET allow_community_extensions = false",
		"SET lock_configuration = true",
	}
}

// deniedFunctions are the functions a SELECT may call that change what
// this check and the configuration guarantee, with the reason. Every other
// table function of DuckDB 1.5 was reviewed (TestEveryTableFunctionReviewed
// fails when a DuckDB upgrade brings new ones).
var deniedFunctions = map[string]string{
	"enable_logging":              "it changes the database's configuration and can write log files",
	"disable_logging":             "it changes the database's configuration",
	"truncate_duckdb_logs":        "it changes the database's state",
	"enable_profiling":            "it changes the database's configuration and can write profile files",
	"disable_profiling":           "it changes the database's configuration",
	"enable_peg_parser":           "it changes the database's configuration",
	"disable_peg_parser":          "it changes the database's configuration",
	"query":                       "it runs SQL given as a value, which lakelink cannot check; write that SQL itself",
	"query_table":                 "it runs SQL given as a value, which lakelink cannot check; name the table itself",
	"json_execute_serialized_sql": "it runs SQL given as a value, which lakelink cannot check; write that SQL itself",
	"arrow_scan":                  "it reads memory at an address given as a value (it is for DuckDB's clients)",
	"arrow_scan_dumb":             "it reads memory at an address given as a value (it is for DuckDB's clients)",
}

// Why statements other than SELECT are refused, by their first keyword.
const (
	whyWrite     = "it writes files, and a file written into the lake can break it; print the result with --format csv (or json, jsonl) and redirect it to a file"
	whyChange    = "the lake changes only through lakelink sync"
	whyCatalog   = "the lake database's tables are views of the lake's latest commit; use a WITH clause for a query's own tables"
	whyAttach    = "queries read only the lake (another database file could be written to as well)"
	whyExtension = "extensions are never downloaded or loaded; the built-in ones (json, parquet, icu) are there"
	whySet       = "the database's configuration is locked: it keeps queries read-only and inside the lake"
	whyTx        = "a query sees one commit of the lake already; one statement needs no transaction"
	whyMaintain  = "the lake database has nothing to maintain"
)

var statementRules = map[string]string{
	"COPY": whyWrite, "EXPORT": whyWrite,
	"IMPORT": "it runs the statements of files outside the lake",
	"INSERT": whyChange, "UPDATE": whyChange, "DELETE": whyChange, "MERGE": whyChange, "TRUNCATE": whyChange,
	"CREATE": whyCatalog, "DROP": whyCatalog, "ALTER": whyCatalog, "COMMENT": whyCatalog,
	"ATTACH": whyAttach, "DETACH": whyAttach, "USE": whyAttach,
	"INSTALL": whyExtension, "LOAD": whyExtension, "FORCE": whyExtension,
	"SET": whySet, "RESET": whySet,
	"PRAGMA":     "pragmas change settings or files; to look at tables use DESCRIBE <table>, SHOW TABLES or SELECT * FROM pragma_table_info('<table>')",
	"CALL":       "CALL runs DuckDB's procedures; call a table function from a SELECT: SELECT * FROM <function>(...)",
	"CHECKPOINT": whyMaintain, "VACUUM": whyMaintain, "ANALYZE": whyMaintain,
	"EXPLAIN": "EXPLAIN ANALYZE runs the statement it explains, and lakelink cannot check that statement",
	"BEGIN":   whyTx, "START": whyTx, "COMMIT": whyTx, "ROLLBACK": whyTx, "ABORT": whyTx, "END": whyTx,
	"PREPARE": "run the query itself", "EXECUTE": "run the query itself", "DEALLOCATE": "run the query itself",
}

// serialized is what json_serialize_sql returns.
type serialized struct {
	Error      bool              `json:"error"`
	ErrorType  string            `json:"error_type"`
	Message    string            `json:"error_message"`
	Statements []json.RawMessage `json:"statements"`
}

// checkQuery returns nil when query is one SELECT statement that calls no
// denied function, a *NotAllowedError when it is something else, and
// DuckDB's error when it does not parse. It runs nothing of query.
func (db *DB) checkQuery(ctx context.Context, query string) error {
	var out string
	if err := db.sql.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql($1::VARCHAR) AS VARCHAR)", query).Scan(&out); err != nil {
		return fmt.Errorf("check the statement: %w", err)
	}
	var s serialized
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return fmt.Errorf("check the statement: DuckDB's parse tree does not decode: %w", err)
	}
	if s.Error {
		// Not SELECT statements, or no valid SQL: DuckDB's prepare names
		// the kind of statement (or the syntax error) without running it.
		return describe(ctx, query)
	}
	switch len(s.Statements) {
	case 0:
		return errors.New("the SQL holds no statement")
	case 1:
	default:
		return multiple(len(s.Statements))
	}
	var tree any
	if err := json.Unmarshal(s.Statements[0], &tree); err != nil {
		return fmt.Errorf("check the statement: DuckDB's parse tree does not decode: %w", err)
	}
	return deniedCall(tree)
}

func multiple(n int) error {
	what := "more than one statement"
	if n > 0 {
		what = fmt.Sprintf("more than one statement (%d)", n)
	}
	return &NotAllowedError{What: what, Why: "lakelink query runs exactly one SELECT statement; run each with its own lakelink query"}
}

// deniedCall walks a statement's parse tree and refuses the first call of
// a denied function. Function names ignore case in DuckDB, as here.
func deniedCall(node any) error {
	switch n := node.(type) {
	case map[string]any:
		if name, ok := n["function_name"].(string); ok {
			if why, ok := deniedFunctions[strings.ToLower(name)]; ok {
				return &NotAllowedError{What: "the function " + strings.ToLower(name), Why: why}
			}
		}
		for _, v := range n {
			if err := deniedCall(v); err != nil {
				return err
			}
		}
	case []any:
		for _, v := range n {
			if err := deniedCall(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// describe explains why query, which json_serialize_sql did not accept,
// is refused: several statements, a syntax error (as DuckDB words it), or
// one statement that is not a SELECT. DuckDB's driver splits statements
// and refuses several in Prepare; it also binds a single one, which has
// effects for some (EXPORT DATABASE creates its directory), so the
// statement is prepared in the sandbox, never in the lake database.
func describe(ctx context.Context, query string) error {
	box, err := openSandbox()
	if err != nil {
		return err
	}
	conn, err := box.Conn(ctx)
	if err != nil {
		return fmt.Errorf("check the statement: %w", err)
	}
	defer conn.Close()
	var prepErr error
	err = conn.Raw(func(dc any) error {
		// Prepare, not PrepareContext: PrepareContext runs every statement
		// but the last.
		st, err := dc.(driver.Conn).Prepare(query)
		if err != nil {
			prepErr = err
			return nil
		}
		return st.Close()
	})
	if err != nil {
		return fmt.Errorf("check the statement: %w", err)
	}
	switch {
	case prepErr != nil && strings.Contains(prepErr.Error(), "multi-statement"):
		return multiple(0)
	case prepErr != nil && strings.Contains(prepErr.Error(), "Parser Error"):
		return prepErr
	}
	// One statement that parses (it may not bind in the empty sandbox).
	// DuckDB has no parse-only statement type, so its first keyword names
	// it; only the message depends on that, the refusal does not.
	kw := firstKeyword(query)
	if why, ok := statementRules[kw]; ok {
		return &NotAllowedError{What: kw, Why: why}
	}
	return &NotAllowedError{What: "a statement that is not a SELECT", Why: "lakelink query runs one SELECT statement only"}
}

// firstKeyword returns the first word of query in upper case, after
// blanks, comments and opening parentheses.
func firstKeyword(query string) string {
	for {
		query = strings.TrimLeft(query, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(query, "--"):
			_, query, _ = strings.Cut(query, "\n")
		case strings.HasPrefix(query, "/*"):
			_, query, _ = strings.Cut(query, "*/")
		default:
			end := strings.IndexFunc(query, func(r rune) bool { return !unicode.IsLetter(r) })
			if end < 0 {
				end = len(query)
			}
			return strings.ToUpper(query[:end])
		}
	}
}

// sandbox is an empty in-memory DuckDB that reaches no file, no extension
// and whose configuration is locked: describe binds refused statements
// there. One serves the process; it holds no data.
var sandbox struct {
	once sync.Once
	db   *sql.DB
	err  error
}

func openSandbox() (*sql.DB, error) {
	sandbox.once.Do(func() {
		connector, err := duckdb.NewConnector("", nil)
		if err != nil {
			sandbox.err = fmt.Errorf("check the statement: start DuckDB: %w", err)
			return
		}
		db := sql.OpenDB(connector)
		for _, q := range []string{
			"SET memory_limit = '64MB'",
			"SET threads = 1",
			"SET autoinstall_known_extensions = false",
			"SET autoload_known_extensions = false",
			"SET temp_directory = ''",
			"SET enable_external_access = false",
			"SET lock_configuration = true",
		} {
			if _, err := db.Exec(q); err != nil {
				sandbox.err = fmt.Errorf("check the statement: set up DuckDB: %s: %w", q, err)
				return
			}
		}
		sandbox.db = db
	})
	return sandbox.db, sandbox.err
}

// explainAccess words a query's failure to reach a file outside the
// allowed directories; other errors pass unchanged.
func (db *DB) explainAccess(err error) error {
	if err == nil || !strings.Contains(err.Error(), "Permission Error") {
		return err
	}
	return fmt.Errorf("lakelink query reads only the lake (%s) and its Parquet cache: %w", db.st.Location(""), err)
}
