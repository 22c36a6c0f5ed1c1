package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/sqldb"
)

func init() { commands = append(commands, newQueryCmd) }

func newQueryCmd() *cobra.Command {
	var (
		lf      lakeFlags
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   `query -c link.yaml [--format table|csv|json|jsonl] "SQL"`,
		Short: "Run one SELECT on the read-only lake database: <table>, <table>_partitioned, the metadata tables, sys.*",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !verbose {
				// Like psql and duckdb, query prints its result and its
				// errors only: the lake database's log lines (its Parquet
				// cache is rebuilt from the lake whenever it cannot be
				// read) are for --verbose.
				slog.SetDefault(slog.New(slog.DiscardHandler))
			}
			st, _, err := lf.open(cmd.Context())
			if err != nil {
				return err
			}
			db, err := sqldb.Open(cmd.Context(), st, lake.NewReader(st).State)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Print(cmd.Context(), os.Stdout, args[0], format)
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "table", "output format: "+strings.Join(sqldb.Formats, ", "))
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the lake database's log lines (Parquet cache) on stderr")
	return cmd
}
