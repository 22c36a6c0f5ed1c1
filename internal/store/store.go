// Package store holds the object stores a lake lives in (DESIGN.md decision 7).
//
// The interface offers only what S3 and Azure Blob offer cheaply: write a whole
// object, write an object only if its name is free, copy an object inside the
// store, read, list by prefix, delete. No operation renames or appends, so the
// commit protocol built on it (package lake) needs neither.
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

// Store is a flat namespace of immutable-once-written objects whose names are
// slash-separated paths relative to the lake root.
type Store interface {
	// Create starts writing the object name. Nothing is visible under name
	// until Close returns nil; Close replaces an existing object atomically
	// (a reader sees the old or the new object, never a mix).
	Create(ctx context.Context, name string) (Writer, error)
	// PutIfAbsent writes the object name from data only if no object has that
	// name, atomically: it returns an error wrapping ErrExist otherwise.
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
	// List returns the objects whose names start with prefix, sorted by name.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the object name; deleting an absent object is not an error.
	Delete(ctx context.Context, name string) error
	// Location returns what a reader outside lakelink (DuckDB, model.json
	// consumers) uses to read the object: a local path or a URL.
	Location(name string) string
}

// Writer writes one object. Exactly one of Close or Abort must be called.
type Writer interface {
	io.Writer
	// Close publishes the object.
	Close() error
	// Abort discards what was written; the object stays as it was.
	Abort() error
}

// Object is one entry of List.
type Object struct {
	Name    string
	Size    int64
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
