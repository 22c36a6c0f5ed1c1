package store

import "fmt"

// Stats counts what a store did: operations by kind, fsyncs (of files and of
// folders) and bytes written. They are what a commit costs, and what
// `lakelink bench` reports per commit so that a cost that grows with the
// number of tables shows (issue #16). A backend that counts returns them from
// a function of its own (local.Stats).
type Stats struct {
	Creates, PutIfAbsents, Copies, Opens, Lists, Deletes int64
	// Listed counts the objects Lists returned: a List is one request to
	// an object store per 1000 names.
	Listed int64
	// Fsyncs counts file and folder syncs.
	Fsyncs int64
	// BytesWritten counts the bytes of objects published by Create and
	// PutIfAbsent, and of byte copies (hard links write none).
	BytesWritten int64
}

// Ops is the number of store requests.
func (s Stats) Ops() int64 {
	return s.Creates + s.PutIfAbsents + s.Copies + s.Opens + s.Lists + s.Deletes
}

// Sub returns s minus an earlier reading.
func (s Stats) Sub(o Stats) Stats {
	return Stats{
		Creates: s.Creates - o.Creates, PutIfAbsents: s.PutIfAbsents - o.PutIfAbsents, Copies: s.Copies - o.Copies,
		Opens: s.Opens - o.Opens, Lists: s.Lists - o.Lists, Deletes: s.Deletes - o.Deletes, Listed: s.Listed - o.Listed,
		Fsyncs: s.Fsyncs - o.Fsyncs, BytesWritten: s.BytesWritten - o.BytesWritten,
	}
}

func (s Stats) String() string {
	return fmt.Sprintf("%d ops (%d create, %d put-if-absent, %d copy, %d open, %d list of %d names, %d delete), %d fsyncs, %d bytes written",
		s.Ops(), s.Creates, s.PutIfAbsents, s.Copies, s.Opens, s.Lists, s.Listed, s.Deletes, s.Fsyncs, s.BytesWritten)
}
