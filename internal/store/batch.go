package store

import "context"

// Batcher is a Store whose writes can share the work that makes them
// durable. The local store makes an object durable by syncing its file and
// then its folder; a table's stage writes several files into one folder and
// a publication copies several into another, and syncing the folder once
// for all of them instead of once per file is most of an initial sync's
// fsyncs (issue #16). An object store's writes are durable when they
// return: it has nothing to batch and does not implement Batcher.
type Batcher interface {
	Store
	// Batch returns a Store that writes the same objects as this one
	// (every other guarantee of Store holds unchanged), except that Close
	// of its writers and Copy may leave a published object's name not yet
	// durable, until Sync of the batch returns nil.
	Batch() Batch
}

// Batch is a view of a store whose published objects are made durable
// together, by Sync.
//
// Contract: an object a Batch published is visible at once and survives
// the process being killed, as on the store itself; it is certain to
// survive a power loss only once Sync returned nil. So a caller must Sync
// before it commits anything that names such an object (a commit record,
// a manifest): that is what keeps "a committed name names a durable
// object" true. PutIfAbsent, the commit arbiter, is durable when it returns
// even in a batch. A Batch is safe for concurrent use; Sync makes durable
// everything published through the batch before Sync was called, and the
// batch may go on being used after it.
type Batch interface {
	Store
	Sync(ctx context.Context) error
}

// NewBatch returns s's Batch when s is a Batcher, else s itself, whose every
// write is durable when it returns, with a Sync that does nothing.
func NewBatch(s Store) Batch {
	if b, ok := s.(Batcher); ok {
		return b.Batch()
	}
	return durable{s}
}

// durable is the Batch of a store that is not a Batcher.
type durable struct{ Store }

func (durable) Sync(context.Context) error { return nil }
