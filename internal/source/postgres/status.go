package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/source"
)

var (
	_ source.HealthReporter = (*Source)(nil)
	_ source.Lifecycle      = (*Source)(nil)
)

// Health reports how far the link's slot is behind: the WAL bytes written
// (inserted, so asynchronous commits count at once) past its confirmed
// position, and the flush lag the server measures for the walsender
// streaming it (0 when caught up or when no Stream runs).
func (s *Source) Health(ctx context.Context) (source.Health, error) {
	var bytes int64
	var seconds float64
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), s.confirmed_flush_lsn), 0)::bigint,
		       coalesce(extract(epoch FROM r.flush_lag), 0)::float8
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1 AND s.database = current_database()`, s.slot).Scan(&bytes, &seconds)
	if errors.Is(err, pgx.ErrNoRows) {
		return source.Health{}, fmt.Errorf("postgres source %s: replication slot %s does not exist; the link has not copied a table yet, or was unlinked", s.where, s.slot)
	}
	if err != nil {
		return source.Health{}, fmt.Errorf("postgres source %s: read lag of slot %s: %w", s.where, s.slot, err)
	}
	return source.Health{Retained: bytes, Lag: time.Duration(seconds * float64(time.Second))}, nil
}

// Deleted drops the link's slot, so the server stops retaining WAL for it,
// and the publication if lakelink created it (a publication the user named
// and created stays). Stop any Stream first: an active slot cannot be
// dropped.
func (s *Source) Deleted(ctx context.Context) error {
	var dropped bool
	err := s.pool.QueryRow(ctx, `SELECT pg_drop_replication_slot(slot_name) IS NULL FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`, s.slot).Scan(&dropped)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres source %s: drop replication slot %s (stop lakelink sync for the link first): %w", s.where, s.slot, err)
	}
	var comment *string
	err = s.pool.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`, s.pub).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("postgres source %s: read publication %s: %w", s.where, s.pub, err)
	case comment == nil || !strings.HasPrefix(*comment, pubComment):
		s.log.Info("publication left in place: lakelink did not create it", "publication", s.pub)
		return nil
	}
	if _, err := s.pool.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{s.pub}.Sanitize()); err != nil {
		return fmt.Errorf("postgres source %s: drop publication %s: %w", s.where, s.pub, err)
	}
	return nil
}
