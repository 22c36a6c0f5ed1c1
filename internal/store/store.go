// Package store owns the interface of the object stores a lake lives in and
// the registry that opens one by URL (docs/decisions.md decision 7).
//
// The interface offers only what S3 and Azure Blob offer cheaply: write a whole
// object, write an object only if its name is free, copy an object inside the
// store, read, list by prefix, delete. No operation renames or appends, so the
// commit protocol built on it (package lake) needs neither.
//
// Each backend is a package of its own (store/local for a folder) that
// registers its URL scheme from init; Open picks it by the scheme. Every
// backend runs the contract suite of store/storetest unchanged.
//
// Package store imports only the standard library: the lake, the engine and
// the backends import it, never the reverse.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors a caller can test with errors.Is.
var (
	ErrNotExist = errors.New("object does not exist")
	ErrExist    = errors.New("object already exists")
)

// Store is a flat namespace of objects, each written whole and never modified
// in place (it may be replaced whole). Names are slash-separated paths
// relative to the lake root, as fs.ValidPath has them ("a/b.csv"; not "",
// ".", "/a", "a//b" or any "." or ".." element); every operation rejects
// another name with an error, so a lake means the same on every store.
// Slashes are only characters of the name: there are no folders to create or
// remove.
//
// A Store is safe for concurrent use by many goroutines and processes; the
// guarantees below hold between them.
type Store interface {
	// Create starts writing the object name. Nothing is visible under name
	// until Close returns nil; Close replaces an existing object atomically
	// (a reader sees the old or the new object, never a mix or a part).
	Create(ctx context.Context, name string) (Writer, error)
	// PutIfAbsent writes the object name from data only if no object has that
	// name, atomically: of many writers racing for one name (in any
	// processes) exactly one succeeds, and the others get an error wrapping
	// ErrExist and leave the winner's object as it is. It is the one
	// arbiter between writers the commit protocol relies on.
	PutIfAbsent(ctx context.Context, name string, data []byte) error
	// Copy makes the object to hold the contents of from, replacing to
	// atomically as Close does; an error wraps ErrNotExist when from is
	// absent. It is what S3 CopyObject and Azure Copy Blob do server-side:
	// the bytes need not pass through lakelink. The copy's ModTime is the
	// time of the copy, not from's: orphan clean-up (package lake) takes
	// an unnamed object's age from it.
	Copy(ctx context.Context, from, to string) error
	// Open reads the object name; an error wraps ErrNotExist when it is absent.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns all the objects whose names start with prefix (a string
	// prefix: "a/b" matches "a/b.csv" and "a/bc/d"), sorted by name byte
	// by byte. A backend whose service lists in pages (1000 names on S3)
	// reads every page. Objects being written (Create before Close) are
	// not listed.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the object name; deleting an absent object is not an error.
	Delete(ctx context.Context, name string) error
	// Location returns what a reader outside lakelink (DuckDB, model.json
	// consumers) uses to read the object: a local path or a URL. Location("")
	// is the lake root, what messages name the lake by (a folder, or a URL
	// such as s3://bucket/prefix, never with a secret); every Location(name)
	// starts with it.
	Location(name string) string
}

// Writer writes one object. Exactly one of Close or Abort must be called.
type Writer interface {
	io.Writer
	// Close publishes the object; on an error nothing is published.
	Close() error
	// Abort discards what was written: the object stays as it was (absent
	// if it was), and nothing of the write is left in the store.
	Abort() error
}

// Object is one entry of List.
type Object struct {
	Name string
	Size int64
	// ModTime is when the object was last written (Create, PutIfAbsent or
	// Copy), as the store's clock has it.
	ModTime time.Time
}

// Put writes data as the object name, replacing it atomically.
func Put(ctx context.Context, s Store, name string, data []byte) error {
	w, err := s.Create(ctx, name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Close()
}

// ReadAll reads the whole object name.
func ReadAll(ctx context.Context, s Store, name string) ([]byte, error) {
	r, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
