package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/tools/demo"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var (
		dir     string
		scale   int
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "The whole walkthrough: emulator with the Sales sample, a link, changes timed into SQL",
		Long: `demo starts the Dataverse emulator with the Dynamics 365 Sales sample, links account,
contact and opportunity into a lake folder, runs the initial sync with progress bars,
creates, updates and deletes rows through the Web API and prints how long each took
to show up in a SQL query, runs a query that joins choice labels, and prints where the
lake folder is. DIR (default ./lakelink-demo) is emptied first if an earlier demo made it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return demo.Run(cmd.Context(), demo.Options{Dir: dir, Scale: scale, Out: os.Stdout, Progress: os.Stderr, Logger: log})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "lakelink-demo", "folder for the emulator's data, the profile and the lake")
	cmd.Flags().IntVar(&scale, "scale", 20000, "rows per main table of the Sales sample")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log what the sync does")
	return cmd
}
