package postgres

import (
	"context"
	"errors"

	"github.com/lakelink/lakelink/internal/source"
)

// Stream delivers changes; see stream.go.
func (s *Source) Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, source.Batch) error) error {
	return errors.New("postgres source: Stream is not implemented in this commit")
}
