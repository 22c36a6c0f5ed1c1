package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// blockSize is the size of the blocks a large object is staged in, and the
// largest object written by one Put Blob. A writer holds two blocks at most
// (one filling, one uploading), so memory stays bounded whatever the size
// of the object; 50,000 blocks (the service's cap) make 400 GiB.
const blockSize = 8 << 20

// writer writes one blob: an object up to blockSize with one Put Blob on
// Close, a larger one as staged blocks (Put Block, one in flight while the
// next fills) committed by Put Block List on Close. Until then nothing is
// visible: uncommitted blocks are not listed, and the service discards them
// (after a week) when no commit names them.
//
// Two writers staging blocks for one name at once do not mix (their block
// IDs differ), but the first commit discards the other's staged blocks, so
// the second Close fails and publishes nothing; the lake never writes one
// name from two writers at once.
type writer struct {
	s    *Store
	ctx  context.Context
	name string
	bb   *blockblob.Client

	buf []byte // the block being filled
	// inflight is the block being staged and done its result; once staged,
	// its buffer takes the next block.
	inflight []byte
	done     chan error
	ids      []string
	tag      string // this writer's part of its block IDs
	err      error  // the first error: every later call returns it
	closed   bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, fmt.Errorf("%s: write after Close or Abort", w.s.Location(w.name))
	}
	n := 0
	for len(p) > 0 {
		k := min(blockSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == blockSize {
			if err := w.stage(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// stage starts staging buf as the next block, once the block before it is
// staged.
func (w *writer) stage() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.tag == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		w.tag = hex.EncodeToString(b[:])
	}
	// Block IDs of one blob must all have one length: the tag is 32 hex
	// digits and the number 6 digits.
	id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", w.tag, len(w.ids)))
	w.ids = append(w.ids, id)
	free := w.inflight
	w.inflight, w.buf = w.buf, free[:0]
	w.done = make(chan error, 1)
	go func(data []byte) {
		_, err := w.bb.StageBlock(w.ctx, id, streaming.NopCloser(bytes.NewReader(data)), nil)
		w.done <- err
	}(w.inflight)
	return nil
}

// wait waits for the block in flight, if any.
func (w *writer) wait() error {
	if w.done != nil {
		err := <-w.done
		w.done = nil
		if err != nil && w.err == nil {
			w.err = w.s.fail("write", w.name, err)
		}
	}
	return w.err
}

func (w *writer) Close() error {
	if w.closed {
		return fmt.Errorf("%s: Close after Close or Abort", w.s.Location(w.name))
	}
	w.closed = true
	if w.err != nil {
		_ = w.wait()
		return w.err
	}
	if len(w.ids) == 0 {
		_, err := w.bb.Upload(w.ctx, streaming.NopCloser(bytes.NewReader(w.buf)), nil)
		w.buf = nil
		if err != nil {
			return w.s.fail("write", w.name, err)
		}
		return nil
	}
	if len(w.buf) > 0 {
		if err := w.stage(); err != nil {
			return err
		}
	}
	if err := w.wait(); err != nil {
		return err
	}
	w.buf, w.inflight = nil, nil
	if _, err := w.bb.CommitBlockList(w.ctx, w.ids, nil); err != nil {
		return w.s.fail("write", w.name, err)
	}
	return nil
}

// Abort drops what was written. Staged blocks stay with the service, never
// listed, until it discards them.
func (w *writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	_ = w.wait()
	w.buf, w.inflight = nil, nil
	return nil
}
