package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/link"
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
			if err := link.UnlinkStore(ctx, st, p, deleteData); err != nil {
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
