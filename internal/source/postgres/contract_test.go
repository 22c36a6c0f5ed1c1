package postgres

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/source/sourcetest"
)

// TestContract runs package source's contract suite against a real
// cluster: a fresh database and link (so a fresh slot) per subtest.
func TestContract(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Env {
		const rows = 10
		c, db, dsn := newDB(t,
			"CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)",
			fmt.Sprintf("INSERT INTO items SELECT g, 0 FROM generate_series(1, %d) g", rows),
			"CREATE TABLE nokey (a int)",
		)
		// Every Source of the subtest is the same link: the same slot
		// and publication, as after a restart.
		link := fmt.Sprintf("contract%d", linkSeq.Add(1))
		var next atomic.Int64
		next.Store(1000)
		return &sourcetest.Env{
			Open: func(t *testing.T) source.Source {
				return newSource(t, Config{DSN: dsn, Link: link, Tables: []TableConfig{{Name: "public.items"}}, BatchRows: 3})
			},
			Table:     "public.items",
			Rows:      rows,
			Untracked: "public.nokey",
			Insert: func(t *testing.T) string {
				id := next.Add(1)
				c.Exec(t, db, fmt.Sprintf("INSERT INTO items VALUES (%d, 0)", id))
				return strconv.FormatInt(id, 10)
			},
			Update: func(t *testing.T, id string) {
				c.Exec(t, db, "UPDATE items SET v = v + 1 WHERE id = "+id)
			},
			Delete: func(t *testing.T, id string) {
				c.Exec(t, db, "DELETE FROM items WHERE id = "+id)
			},
			// Dropping the slot is the expiry a cursor most often meets
			// (unlinked, or dropped by an operator to free WAL).
			Expire: func(t *testing.T, s source.Source) {
				if err := s.(*Source).Deleted(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
