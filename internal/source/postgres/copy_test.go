package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/lakelink/lakelink/internal/source"
)

func TestCopyChunksAndResume(t *testing.T) {
	const n = 60000
	_, _, dsn := newDB(t,
		"CREATE TABLE big (id int PRIMARY KEY, pad text)",
		fmt.Sprintf("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, %d) g", n),
	)
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "big"}}, CopyWorkers: 3, BatchRows: 5000})
	ctx := context.Background()

	// The first attempt fails after a few batches; the retry resumes.
	failing := &collector{failAt: 4, fail: errors.New("disk full")}
	if err := s.Copy(ctx, "big", "", failing.emit); err == nil || err.Error() != "disk full" {
		t.Fatalf("Copy with failing emit: %v", err)
	}
	if len(failing.batches) != 4 {
		t.Fatalf("got %d batches before the failure, want 4", len(failing.batches))
	}
	resume := failing.last().Cursors["big"]
	var cur copyCursor
	if cur, _ = parseCopyCursor(resume); cur.Chunks < 2 {
		t.Fatalf("want several chunks, cursor %s", resume)
	}
	rest := &collector{}
	if err := s.Copy(ctx, "big", resume, rest.emit); err != nil {
		t.Fatalf("resumed Copy: %v", err)
	}
	all := &collector{batches: append(failing.batches, rest.batches...)}
	got := all.rows()["big"]
	if len(got) != n {
		t.Fatalf("copied %d distinct rows, want %d", len(got), n)
	}
	// The changes of one Copy share one Columns slice (source.Change).
	shared := rest.batches[0].Changes[0].Columns
	for _, b := range rest.batches {
		for _, ch := range b.Changes {
			if &ch.Columns[0] != &shared[0] || len(ch.Columns) != len(shared) {
				t.Fatalf("row %s: Columns %v not shared with the other rows'", ch.ID, ch.Columns)
			}
		}
	}
	total := 0
	for _, b := range all.batches {
		total += len(b.Changes)
		if len(b.Changes) > 5000 {
			t.Fatalf("batch of %d rows exceeds BatchRows", len(b.Changes))
		}
	}
	if total != n {
		t.Fatalf("emitted %d rows, want %d (duplicates across the resume)", total, n)
	}
	final := rest.last()
	if !final.Done {
		t.Fatal("last batch not Done")
	}
	lsn, err := pglogrepl.ParseLSN(final.Cursors["big"])
	if err != nil {
		t.Fatalf("final cursor %q: %v", final.Cursors["big"], err)
	}
	for id, ch := range got {
		if ch.Version != int64(lsn)<<16 {
			t.Fatalf("row %s version %d, want CP<<16 = %d", id, ch.Version, int64(lsn)<<16)
		}
		if want, _ := strconv.Atoi(id); value(ch, "id") != int64(want) {
			t.Fatalf("row %s has id %v", id, value(ch, "id"))
		}
	}
}

func TestCopyExpiredSnapshot(t *testing.T) {
	_, _, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 10)")
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "t"}}})
	cur := `{"snapshot":"00000003-00000002-1","lsn":"0/1000000","chunk_pages":0,"chunks":1,"done_below":0}`
	err := s.Copy(context.Background(), "t", cur, (&collector{}).emit)
	var ce *source.CursorExpiredError
	if !errors.Is(err, source.ErrCursorExpired) || !errors.As(err, &ce) || ce.Table != "t" {
		t.Fatalf("Copy under a gone snapshot: %v, want a CursorExpiredError for t", err)
	}
}

func TestNoPrimaryKeyRefused(t *testing.T) {
	_, _, dsn := newDB(t, "CREATE TABLE nokey (a int, b text)", "CREATE TABLE nothing (id int PRIMARY KEY)", "ALTER TABLE nothing REPLICA IDENTITY NOTHING")
	s := newSource(t, Config{DSN: dsn})
	for _, name := range []string{"nokey", "nothing"} {
		_, err := s.Describe(context.Background(), name)
		var nt *source.NotTrackedError
		if !errors.As(err, &nt) || nt.Table != name {
			t.Fatalf("Describe(%s) = %v, want a NotTrackedError", name, err)
		}
	}
	tables, err := s.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tables {
		if ti.Tracked {
			t.Fatalf("table %s listed as tracked", ti.Name)
		}
	}
}

func FuzzParseCopyCursor(f *testing.F) {
	f.Add(`{"snapshot":"00000003-00000002-1","lsn":"0/1000000","chunk_pages":1024,"chunks":3,"done_below":1,"progress":{"2":"(5,7)"}}`)
	f.Add(`{"snapshot":"x","lsn":"0/0","chunks":1}`)
	f.Add(`0/16B3748`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCopyCursor(s)
		if err != nil {
			return
		}
		// A cursor that parses only names chunks and positions the copy
		// can use in SQL.
		if c.DoneBelow > c.Chunks || !snapshotRE.MatchString(c.Snapshot) {
			t.Fatalf("accepted %q", s)
		}
		for k, v := range c.Progress {
			if k < c.DoneBelow || k >= c.Chunks || (v != chunkDone && !ctidRE.MatchString(v)) {
				t.Fatalf("accepted progress %d=%q", k, v)
			}
		}
	})
}

// TestCopyAfterRestart: a copy interrupted by a restart cannot resume (its
// snapshot died with the process); copied afresh under a temporary slot's
// snapshot, the table then streams from the link's slot without a gap.
func TestCopyAfterRestart(t *testing.T) {
	c, db, dsn := newDB(t, "CREATE TABLE t (id int PRIMARY KEY, v int)", "INSERT INTO t SELECT g, 0 FROM generate_series(1, 5000) g")
	cfg := Config{DSN: dsn, Link: "restart_" + db, Tables: []TableConfig{{Name: "t"}}, BatchRows: 1000, CopyWorkers: 1}
	first, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	failing := &collector{failAt: 2, fail: errors.New("killed")}
	if err := first.Copy(context.Background(), "t", "", failing.emit); err == nil {
		t.Fatal("interrupted copy reported success")
	}
	resume := failing.last().Cursors["t"]
	_ = first.Close()

	c.Exec(t, db, "UPDATE t SET v = 1 WHERE id <= 10")
	second := newSource(t, cfg)
	err = second.Copy(context.Background(), "t", resume, (&collector{}).emit)
	if !errors.Is(err, source.ErrCursorExpired) {
		t.Fatalf("resume after restart: %v, want ErrCursorExpired", err)
	}
	col := &collector{}
	if err := second.Copy(context.Background(), "t", "", col.emit); err != nil {
		t.Fatal(err)
	}
	if got := value(col.rows()["t"]["1"], "v"); got != int64(1) {
		t.Fatalf("fresh copy sees v=%v for row 1, want 1", got)
	}
	r := startStream(second, map[string]string{"t": col.last().Cursors["t"]}, col)
	c.Exec(t, db, "UPDATE t SET v = 2 WHERE id = 1")
	waitFor(t, "the change after the fresh copy", func() bool { return value(col.rows()["t"]["1"], "v") == int64(2) })
	r.stop(t)
}

func TestReplicaIdentityIndexKey(t *testing.T) {
	_, _, dsn := newDB(t,
		"CREATE TABLE r (a int NOT NULL, b text NOT NULL, v int)",
		"CREATE UNIQUE INDEX r_ab ON r (b, a)",
		"ALTER TABLE r REPLICA IDENTITY USING INDEX r_ab",
		"INSERT INTO r VALUES (1, 'x|y', 0)",
	)
	s := newSource(t, Config{DSN: dsn, Tables: []TableConfig{{Name: "r"}}})
	desc, err := s.Describe(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(desc.Key) != "[b a]" {
		t.Fatalf("key %v, want the replica identity index's columns [b a]", desc.Key)
	}
	col := &collector{}
	if err := s.Copy(context.Background(), "r", "", col.emit); err != nil {
		t.Fatal(err)
	}
	if _, ok := col.rows()["r"][`x\|y|1`]; !ok {
		t.Fatalf("composite Id not escaped as documented: %v", col.rows()["r"])
	}
}
