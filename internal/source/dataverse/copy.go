package dataverse

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/lakelink/lakelink/internal/source"
)

// firstLink is the relative URL of a fresh change-tracking read of l's
// table: every readable column, lookups by their _<name>_value.
func (l *layout) firstLink() string {
	var sel []string
	for _, f := range l.fields {
		if f.selectName != "" {
			sel = append(sel, f.selectName)
		}
	}
	return apiPath + l.set + "?$select=" + url.QueryEscape(strings.Join(sel, ","))
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
	for {
		// The first read returns no deleted entities; a delete version is
		// only needed by Stream.
		p, err := s.readPage(ctx, l, cur.Link, cur.Max+1)
		if err != nil {
			return err
		}
		next := cursor{Max: max(cur.Max, p.maxVersion)}
		done := p.next == ""
		link := p.next
		if done {
			link, next.Delta = p.delta, true
		}
		if next.Link, err = relativeLink(link); err != nil {
			return &DecodeError{Table: table, Err: err}
		}
		b := source.Batch{Changes: p.changes, Cursors: map[string]string{table: next.String()}, Done: done}
		if err := emit(ctx, b); err != nil {
			return err
		}
		if done {
			return nil
		}
		cur = next
	}
}
