package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// Statement is a query checked and described before it runs, for clients
// that need its parameter and result types first (the PostgreSQL
// endpoint's Parse and Describe). It holds no DuckDB resource: Query runs
// the statement afresh on the latest commit.
type Statement struct {
	db    *DB
	query string // what runs: the statement, with Text columns cast to VARCHAR
	// Params are the types DuckDB infers for $1, $2, ...; Type "" when it
	// cannot tell (the value is then bound as text).
	Params []Column
	// Columns describe the result.
	Columns []Column
}

// Column is a DuckDB type (and, for a result column, its name).
type Column struct {
	Name string
	// Type is DuckDB's type name: BOOLEAN, TINYINT ... BIGINT, UTINYINT ...
	// UBIGINT, HUGEINT, UHUGEINT, FLOAT, DOUBLE, DECIMAL, VARCHAR, BLOB,
	// UUID, DATE, TIME, TIMETZ, TIMESTAMP (also for TIMESTAMP_S, _MS, _NS),
	// TIMESTAMPTZ, INTERVAL, ENUM, JSON; any other type (LIST, STRUCT, MAP,
	// BIT, ...) is reported as its name and arrives as text (Text).
	Type string
	// Width and Scale of a DECIMAL.
	Width, Scale int
	// Text: Query returns the column's values as DuckDB's text (a
	// string), not as the driver's Go value. It holds for JSON (whose
	// document null the driver would return as nil, like SQL NULL) and for
	// every type without a plain Go value.
	Text bool
}

// typeNames are the DuckDB types whose values the driver returns as a
// plain Go value (bool, integers, float64, string, []byte, time.Time,
// duckdb.Decimal, duckdb.Interval, *big.Int).
var typeNames = map[duckdb.Type]string{
	duckdb.TYPE_BOOLEAN: "BOOLEAN", duckdb.TYPE_TINYINT: "TINYINT", duckdb.TYPE_SMALLINT: "SMALLINT",
	duckdb.TYPE_INTEGER: "INTEGER", duckdb.TYPE_BIGINT: "BIGINT", duckdb.TYPE_UTINYINT: "UTINYINT",
	duckdb.TYPE_USMALLINT: "USMALLINT", duckdb.TYPE_UINTEGER: "UINTEGER", duckdb.TYPE_UBIGINT: "UBIGINT",
	duckdb.TYPE_HUGEINT: "HUGEINT", duckdb.TYPE_UHUGEINT: "UHUGEINT", duckdb.TYPE_FLOAT: "FLOAT",
	duckdb.TYPE_DOUBLE: "DOUBLE", duckdb.TYPE_DECIMAL: "DECIMAL", duckdb.TYPE_VARCHAR: "VARCHAR",
	duckdb.TYPE_BLOB: "BLOB", duckdb.TYPE_UUID: "UUID", duckdb.TYPE_DATE: "DATE", duckdb.TYPE_TIME: "TIME",
	duckdb.TYPE_TIME_TZ: "TIMETZ", duckdb.TYPE_TIMESTAMP: "TIMESTAMP", duckdb.TYPE_TIMESTAMP_S: "TIMESTAMP",
	duckdb.TYPE_TIMESTAMP_MS: "TIMESTAMP", duckdb.TYPE_TIMESTAMP_NS: "TIMESTAMP",
	duckdb.TYPE_TIMESTAMP_TZ: "TIMESTAMPTZ", duckdb.TYPE_INTERVAL: "INTERVAL", duckdb.TYPE_ENUM: "ENUM",
}

// Prepare checks query as Query does (one SELECT, nothing denied) and
// describes its parameters and result without running it.
func (db *DB) Prepare(ctx context.Context, query string) (*Statement, error) {
	var st *Statement
	err := db.checked(ctx, query, func() (err error) {
		st, err = db.describeStatement(ctx, query)
		return err
	})
	if err != nil {
		return nil, err
	}
	st.query = query
	var text []string
	for i, c := range st.Columns {
		pos := fmt.Sprintf("#%d", i+1)
		if c.Text {
			pos = "CAST(" + pos + " AS VARCHAR)"
		}
		text = append(text, pos+" AS "+quoteIdent(c.Name))
	}
	if len(text) > 0 && st.hasText() {
		// The statement goes inside parentheses, as in Print.
		st.query = "SELECT " + strings.Join(text, ", ") + " FROM (\n" + strings.TrimRight(strings.TrimSpace(query), "; \t\r\n") + "\n)"
	}
	return st, nil
}

func (st *Statement) hasText() bool {
	for _, c := range st.Columns {
		if c.Text {
			return true
		}
	}
	return false
}

// Query runs the statement with args on the latest commit, as DB.Query
// does. A commit that changed the result's columns since Prepare (a column
// added to a table a SELECT * reads) shows in the rows' columns: callers
// compare them with Columns.
func (st *Statement) Query(ctx context.Context, args ...any) (*sql.Rows, error) {
	return st.db.Query(ctx, st.query, args...)
}

// describeStatement prepares query in the lake database (it passed
// checkQuery: preparing a SELECT binds it, which has no effect) and reads
// its parameter and result types.
func (db *DB) describeStatement(ctx context.Context, query string) (*Statement, error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe the statement: %w", err)
	}
	defer conn.Close()
	st := &Statement{db: db}
	err = conn.Raw(func(dc any) error {
		// Prepare, not PrepareContext: PrepareContext runs every statement
		// but the last (checkQuery let one through only, but this does not
		// depend on it).
		ds, err := dc.(driver.Conn).Prepare(query)
		if err != nil {
			return err
		}
		defer ds.Close()
		s, ok := ds.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("describe the statement: the DuckDB driver returned a %T", ds)
		}
		for i := 1; i <= s.NumInput(); i++ {
			t, err := s.ParamType(i)
			if err != nil {
				return fmt.Errorf("describe parameter $%d: %w", i, err)
			}
			p := Column{Name: fmt.Sprintf("$%d", i)}
			if name, ok := typeNames[t]; ok {
				p.Type = name
			}
			st.Params = append(st.Params, p)
		}
		n, err := s.ColumnCount()
		if err != nil {
			return fmt.Errorf("describe the result: %w", err)
		}
		for i := range n {
			name, err := s.ColumnName(i)
			if err != nil {
				return fmt.Errorf("describe result column %d: %w", i+1, err)
			}
			info, err := s.ColumnTypeInfo(i)
			if err != nil {
				return fmt.Errorf("describe result column %s: %w", name, err)
			}
			st.Columns = append(st.Columns, describeColumn(name, info))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func describeColumn(name string, info duckdb.TypeInfo) Column {
	c := Column{Name: name}
	t := info.InternalType()
	switch known, ok := typeNames[t]; {
	case info.Alias() == "JSON":
		c.Type, c.Text = "JSON", true
	case ok:
		c.Type = known
		if d, ok := info.Details().(*duckdb.DecimalDetails); ok {
			c.Width, c.Scale = int(d.Width), int(d.Scale)
		}
	default:
		c.Type, c.Text = fmt.Sprint(t), true
		if n, ok := otherTypeNames[t]; ok {
			c.Type = n
		}
	}
	return c
}

// otherTypeNames name the types that arrive as text.
var otherTypeNames = map[duckdb.Type]string{
	duckdb.TYPE_LIST: "LIST", duckdb.TYPE_STRUCT: "STRUCT", duckdb.TYPE_MAP: "MAP", duckdb.TYPE_ARRAY: "ARRAY",
	duckdb.TYPE_UNION: "UNION", duckdb.TYPE_BIT: "BIT", duckdb.TYPE_BIGNUM: "BIGNUM", duckdb.TYPE_SQLNULL: "SQLNULL",
	duckdb.TYPE_GEOMETRY: "GEOMETRY", duckdb.TYPE_VARIANT: "VARIANT",
}
