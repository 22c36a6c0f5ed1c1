package sqldb

import (
	"context"
	"errors"
	"fmt"
)

// Result is a query's first rows, each value as the json format renders
// it (exact decimals, times as text): what lakelink serve's SQL API
// answers with.
type Result struct {
	Columns []ResultColumn `json:"columns"`
	Rows    [][]any        `json:"rows"`
	// Truncated is set when the query returned more than the limit.
	Truncated bool `json:"truncated"`
}

// ResultColumn names a result column and its DuckDB type.
type ResultColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Collect runs query as Query does (one SELECT, read-only, inside the
// lake) and returns at most limit rows of its result.
func (db *DB) Collect(ctx context.Context, query string, limit int) (*Result, error) {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read the result's columns: %w", err)
	}
	f := &jsonFormatter{cols: make([]resultColumn, len(types))}
	res := &Result{Columns: make([]ResultColumn, len(types)), Rows: [][]any{}}
	for i, t := range types {
		f.cols[i] = resultColumn{name: t.Name(), dbType: t.DatabaseTypeName()}
		res.Columns[i] = ResultColumn{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if len(res.Rows) == limit {
			res.Truncated = true
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read a result row: %w", err)
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = f.value(v, f.cols[i])
		}
		res.Rows = append(res.Rows, row)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("run the query: %w", err)
	}
	return res, nil
}
