package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/tools/pgtest"
)

func TestSetupErrors(t *testing.T) {
	ctx := context.Background()
	replica := pgtest.StartWith(t, "wal_level=replica")
	_, err := New(ctx, Config{DSN: replica.DSN("postgres"), Link: "x"})
	if !errors.Is(err, ErrNotLogical) {
		t.Fatalf("wal_level=replica: %v, want ErrNotLogical", err)
	}

	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)")
	c.Exec(t, db, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'norepl') THEN CREATE ROLE norepl LOGIN; END IF; END $$")
	_, err = New(ctx, Config{DSN: c.TCPDSN(db, "norepl"), Link: "x"})
	if !errors.Is(err, ErrPrivilege) {
		t.Fatalf("role without REPLICATION: %v, want ErrPrivilege", err)
	}
	// A table's own fault fails that table when it is described, not the
	// source: the link's other tables go on (#15 case 15).
	c.Exec(t, db, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'noselect') THEN CREATE ROLE noselect LOGIN REPLICATION; END IF; END $$")
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"role without SELECT", Config{DSN: c.TCPDSN(db, "noselect"), Link: "x", Tables: []TableConfig{{Name: "t"}}}, ErrPrivilege},
		{"missing table", Config{DSN: dsn, Link: "x", Tables: []TableConfig{{Name: "missing"}, {Name: "t"}}}, nil},
		{"missing partition column", Config{DSN: dsn, Link: "x", Tables: []TableConfig{{Name: "t", PartitionColumn: "nope"}}}, nil},
	}
	for _, tt := range tests {
		s, err := New(ctx, tt.cfg)
		if err != nil {
			t.Fatalf("%s: New: %v; a table's fault must not fail the source", tt.name, err)
		}
		_, err = s.Describe(ctx, tt.cfg.Tables[0].Name)
		s.Close()
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Describe: %v, want an error (%v)", tt.name, err, tt.want)
		}
	}
}

// TestManyTablesConcurrently copies many small tables at once through a pool
// smaller than the number of copies: all finish, under one snapshot.
func TestManyTablesConcurrently(t *testing.T) {
	const n = 60
	var setup []string
	var tables []TableConfig
	for i := range n {
		setup = append(setup, fmt.Sprintf("CREATE TABLE t%d (id int PRIMARY KEY, v text)", i), fmt.Sprintf("INSERT INTO t%d SELECT g, 'v' FROM generate_series(1, 100) g", i))
		tables = append(tables, TableConfig{Name: fmt.Sprintf("t%d", i)})
	}
	_, _, dsn := newDB(t, setup...)
	s := newSource(t, Config{DSN: dsn, Tables: tables, CopyWorkers: 2})
	began := time.Now()
	var mu sync.Mutex
	cps := map[string]bool{}
	sem := make(chan struct{}, 12)
	var wg sync.WaitGroup
	for _, tc := range tables {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			col := &collector{}
			if err := s.Copy(context.Background(), tc.Name, "", col.emit); err != nil {
				t.Errorf("Copy %s: %v", tc.Name, err)
				return
			}
			if got := len(col.rows()[tc.Name]); got != 100 {
				t.Errorf("Copy %s: %d rows", tc.Name, got)
			}
			mu.Lock()
			cps[col.last().Cursors[tc.Name]] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("copied %d tables in %s", n, time.Since(began))
	if len(cps) != 1 {
		t.Fatalf("tables copied under %d consistent points, want 1: %v", len(cps), cps)
	}
}

// TestTableAddedToRunningLink copies a table while the link streams others:
// it gets its own snapshot from a temporary slot, and the link's slot holds
// its changes until a Stream includes it.
func TestTableAddedToRunningLink(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE late (id int PRIMARY KEY)", "INSERT INTO late VALUES (1)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "a"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "a")
	r := startStream(s, cursors, col)
	c.Exec(t, db, "INSERT INTO a VALUES (1)", "INSERT INTO late VALUES (2)")
	waitFor(t, "a's change", func() bool { _, ok := col.rows()["a"]["1"]; return ok })

	lateCol := &collector{}
	if err := s.Copy(context.Background(), "late", "", lateCol.emit); err != nil {
		t.Fatal(err)
	}
	if got := len(lateCol.rows()["late"]); got != 2 {
		t.Fatalf("late copy has %d rows, want 2", got)
	}
	c.Exec(t, db, "INSERT INTO late VALUES (3)", "INSERT INTO a VALUES (2)")
	waitFor(t, "a's second change", func() bool { _, ok := col.rows()["a"]["2"]; return ok })
	// Let the stream of a confirm as far as it can: the hold keeps the slot
	// at late's consistent point.
	time.Sleep(statusInterval + time.Second)
	r.stop(t)

	cursors = map[string]string{"a": col.last().Cursors["a"], "late": lateCol.last().Cursors["late"]}
	r = startStream(s, cursors, lateCol)
	waitFor(t, "late's change after its copy", func() bool { _, ok := lateCol.rows()["late"]["3"]; return ok })
	r.stop(t)
	for _, b := range lateCol.batches {
		for _, ch := range b.Changes {
			if ch.Table == "late" && ch.ID == "2" && ch.Version != lateCol.rows()["late"]["1"].Version {
				t.Fatal("a change inside late's snapshot was streamed again")
			}
		}
	}
}

func TestHugeTransactionSplit(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}, BatchRows: 100})
	col := &collector{}
	cursors := copyAll(t, s, col, "t")
	r := startStream(s, cursors, col)
	c.Exec(t, db, "INSERT INTO t SELECT generate_series(1, 2000)")
	waitFor(t, "the whole transaction", func() bool { return len(col.rows()["t"]) == 2000 })
	r.stop(t)
	var parts, complete int
	for _, b := range col.batches {
		if len(b.Changes) == 0 {
			continue
		}
		if len(b.Changes) > splitFactor*100 {
			t.Fatalf("batch of %d changes", len(b.Changes))
		}
		if b.Partial != (b.Cursors == nil) {
			t.Fatalf("batch of %d changes: Partial %v with cursors %v", len(b.Changes), b.Partial, b.Cursors)
		}
		if b.Partial {
			parts++
		} else {
			complete++
		}
	}
	if parts == 0 || complete == 0 {
		t.Fatalf("huge transaction: %d parts without cursors, %d with", parts, complete)
	}
}

var _ source.Source = (*Source)(nil)

// TestStreamJoin joins tables to a running stream: one copied while
// nothing changed it joins in place, the stream goes on and delivers its
// changes after the copy (none before), and its copy's hold on the slot
// ends once a batch's Position covers it; one the stream already read a
// change of after its copy ends the stream with source.ErrRestart.
func TestStreamJoin(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE late (id int PRIMARY KEY)", "INSERT INTO late VALUES (1)",
		"CREATE TABLE changed (id int PRIMARY KEY)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "a"}}})
	col := &collector{}
	cursors := copyAll(t, s, col, "a")
	join := make(chan map[string]string)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.StreamJoin(ctx, cursors, join, col.emit) }()
	c.Exec(t, db, "INSERT INTO a VALUES (1)")
	waitFor(t, "a's change", func() bool { _, ok := col.rows()["a"]["1"]; return ok })

	lateCol := &collector{}
	late := copyAll(t, s, lateCol, "late")
	join <- late
	c.Exec(t, db, "INSERT INTO late VALUES (2)", "INSERT INTO a VALUES (2)")
	waitFor(t, "late's change after its copy", func() bool { _, ok := col.rows()["late"]["2"]; return ok })
	if _, ok := col.rows()["late"]["1"]; ok {
		t.Error("a row of late's copy was streamed")
	}
	waitFor(t, "late's copy to release the slot", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.holds) == 0
	})
	select {
	case err := <-done:
		t.Fatalf("the stream ended: %v", err)
	default:
	}

	changed := copyAll(t, s, &collector{}, "changed")
	c.Exec(t, db, "INSERT INTO changed VALUES (1)", "INSERT INTO a VALUES (3)")
	waitFor(t, "a's change after changed's", func() bool { _, ok := col.rows()["a"]["3"]; return ok })
	join <- changed
	if err := <-done; !errors.Is(err, source.ErrRestart) {
		t.Fatalf("StreamJoin of a table the stream read past ended with %v, want source.ErrRestart", err)
	}
}
