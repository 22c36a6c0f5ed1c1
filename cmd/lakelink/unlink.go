package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/source"
)

func init() { commands = append(commands, newUnlinkCmd) }

func newUnlinkCmd() *cobra.Command {
	var (
		lf         lakeFlags
		deleteData bool
	)
	cmd := &cobra.Command{
		Use:   "unlink -c link.yaml [--delete-data]",
		Short: "Remove a link: its state in the lake, the Postgres slot and publication it created, and with --delete-data the data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, p, err := lf.open(ctx)
			if err != nil {
				return err
			}
			r, err := engine.ReadReport(ctx, st, time.Now(), nil)
			if err != nil {
				return err
			}
			if r.Running {
				return fmt.Errorf("a sync of link %s is running on %s: stop it first (Ctrl-C or SIGTERM)", r.Link, st.Location(""))
			}
			if p != nil && source.Implements[source.Lifecycle](p.Source.Type) {
				if err := sourceDeleted(ctx, p); err != nil {
					return err
				}
			}
			if err := lake.Unlink(ctx, st, nil, deleteData); err != nil {
				return err
			}
			what := "link state removed; the data files stay"
			if deleteData {
				what = "link state and data removed"
			}
			fmt.Printf("unlinked %s: %s (%s)\n", r.Link, what, st.Location(""))
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().BoolVar(&deleteData, "delete-data", false, "also delete the lake's data files")
	return cmd
}

// sourceDeleted removes what the link's source keeps for it in the source
// environment (a Postgres slot and publication); the caller checked that
// the connector implements source.Lifecycle.
func sourceDeleted(ctx context.Context, p *config.Link) error {
	src, err := link.OpenSource(ctx, p, nil, slog.Default())
	if err != nil {
		return fmt.Errorf("dropping the replication slot: %w", err)
	}
	defer src.Close()
	lc, ok := src.(source.Lifecycle)
	if !ok {
		return fmt.Errorf("source type %s has no lifecycle hooks", p.Source.Type)
	}
	return lc.Deleted(ctx)
}
