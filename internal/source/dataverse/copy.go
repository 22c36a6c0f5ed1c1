package dataverse

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/lakelink/lakelink/internal/source"
)

// selectList is the $select of a read of l's table: every readable
// column, lookups by their _<name>_value.
func (l *layout) selectList() string {
	var sel []string
	for _, f := range l.fields {
		if f.selectName != "" {
			sel = append(sel, f.selectName)
		}
	}
	return strings.Join(sel, ",")
}

// firstLink is the relative URL of a fresh change-tracking read of l's
// table.
func (l *layout) firstLink() string {
	return apiPath + l.set + "?$select=" + url.QueryEscape(l.selectList())
}

// Copy reads the table with a change-tracking read, one Batch per page.
// Every batch carries the nextLink to resume after it; the last one carries
// the deltaLink Stream starts from, and Done. A resume cursor whose paging
// token the service rejects as expired gives a *source.CursorExpiredError.
func (s *Source) Copy(ctx context.Context, table, resume string, emit func(context.Context, source.Batch) error) error {
	l, err := s.layout(ctx, table)
	if err != nil {
		return err
	}
	cur := cursor{Link: l.firstLink()}
	if resume != "" {
		if cur, err = parseCursor(table, resume); err != nil {
			return err
		}
		if cur.Delta {
			return fmt.Errorf("dataverse table %s: Copy was given a delta cursor: the copy is already done; pass the cursor to Stream", table)
		}
	}
	// One goroutine reads page n+1 while emit commits page n, so the
	// request's latency hides behind the lake's work. At most two pages are
	// held: the one being emitted and the one read ahead.
	readCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	batches := make(chan copied)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		for {
			b, next, err := s.copyPage(readCtx, l, cur)
			select {
			case batches <- copied{b, err}:
			case <-readCtx.Done():
				return
			}
			if err != nil || b.Done {
				return
			}
			cur = next
		}
	}()
	for c := range batches {
		if c.err != nil {
			return c.err
		}
		s.cfg.Logger.Debug("dataverse copy page", "table", table, "rows", len(c.batch.Changes), "done", c.batch.Done)
		if err := emit(ctx, c.batch); err != nil {
			return err
		}
		if c.batch.Done {
			return nil
		}
	}
	return ctx.Err()
}

// copied is one page of a Copy, read ahead.
type copied struct {
	batch source.Batch
	err   error
}

// copyPage reads the page of a first read at cur and returns its batch and
// the cursor after it.
func (s *Source) copyPage(ctx context.Context, l *layout, cur cursor) (source.Batch, cursor, error) {
	// The first read returns no deleted entities; a delete version is only
	// needed by Stream.
	p, err := s.readPage(ctx, l, cur.Link, cur.Max+1)
	if err != nil {
		return source.Batch{}, cursor{}, err
	}
	next := cursor{Max: max(cur.Max, p.maxVersion)}
	done := p.next == ""
	link := p.next
	if done {
		link, next.Delta = p.delta, true
	}
	if next.Link, err = relativeLink(link); err != nil {
		return source.Batch{}, cursor{}, &DecodeError{Table: l.table, Err: err}
	}
	return source.Batch{Changes: p.changes, Cursors: map[string]string{l.table: next.String()}, Done: done}, next, nil
}
