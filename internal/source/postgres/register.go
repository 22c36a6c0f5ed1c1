package postgres

import (
	"context"

	"github.com/lakelink/lakelink/internal/source"
)

func init() { source.Register("postgres", fromProfile) }

// fromProfile is the connector's constructor for profiles of source.type
// postgres; package config validated the keys it reads.
func fromProfile(ctx context.Context, p source.Params) (*Source, error) {
	s := p.Profile.Source
	tables := make([]TableConfig, 0, len(p.Profile.Tables))
	for _, t := range p.Profile.Tables {
		tables = append(tables, TableConfig{Name: t.Name, PartitionColumn: t.PartitionColumn, Committed: p.Committed[t.Name]})
	}
	return New(ctx, Config{
		DSN:          s.DSN,
		PasswordFile: s.PasswordFile,
		Publication:  s.Publication,
		Slot:         s.Slot,
		Link:         p.Profile.Name,
		Tables:       tables,
		CopyWorkers:  s.CopyWorkers,
		Events:       p.Events,
		Logger:       p.Logger,
	})
}
