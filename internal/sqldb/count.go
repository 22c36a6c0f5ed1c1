package sqldb

import (
	"context"
	"errors"
	"fmt"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/store"
)

// CountRows returns, for every table of state whose <table> view merges
// change files (an in-place table with streamed upserts and deletes that
// no compaction folded in yet), what select count(*) of that view returns
// at exactly state. Those are the only tables whose TableState.Rows may
// differ from SQL's count: change tracking does not say whether an upsert
// is new or an update, so the writer cannot count it without the table's
// keys, and compaction, which reads them, recounts. Every other table is
// absent from the result: its Rows is exact (docs/sync.md).
//
// It opens a lake database (no Parquet cache: a short-lived reader would
// only start conversions it then abandons) only when some table needs
// it, and creates only those tables' views, so a lake of 2000 tables pays
// for the ones with pending changes alone. A table whose count fails is
// left out and named in the error; the others are counted.
func CountRows(ctx context.Context, st store.Store, state *lake.State) (map[string]int64, error) {
	var pending []string
	for name, t := range state.Tables {
		if merges(t, columns(t.Columns)) {
			pending = append(pending, name)
		}
	}
	if len(pending) == 0 {
		return nil, nil
	}
	db, err := OpenWith(ctx, st, func(context.Context) (*lake.State, error) { return state, nil }, Options{})
	if err != nil {
		return nil, fmt.Errorf("count the rows of the tables with pending changes: %w", err)
	}
	defer db.Close()
	views := map[string]sqlName{}
	for name, d := range db.defs {
		if !d.partitioned && !d.alias {
			views[d.table.Name] = name
		}
	}
	counts := make(map[string]int64, len(pending))
	var errs []error
	for _, table := range pending {
		n, err := db.count(ctx, views[table])
		if err != nil {
			errs = append(errs, fmt.Errorf("count the rows of table %s: %w", table, err))
			continue
		}
		counts[table] = n
	}
	return counts, errors.Join(errs...)
}

// count runs select count(*) on the view name, as a query would.
func (db *DB) count(ctx context.Context, name sqlName) (int64, error) {
	rows, err := db.Query(ctx, "SELECT count(*) FROM "+name.sql())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if !rows.Next() {
		return 0, errors.Join(errors.New("count(*) returned no row"), rows.Err())
	}
	if err := rows.Scan(&n); err != nil {
		return 0, err
	}
	return n, rows.Close()
}
