package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/progress"
)

func init() { commands = append(commands, newSyncCmd) }

// exitError carries a process exit code other than 1, or a failure whose
// output already said everything (silent: no message on stderr).
type exitError struct {
	code   int
	msg    string
	silent bool
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

func newSyncCmd() *cobra.Command {
	var (
		profile string
		once    bool
		reinit  []string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "sync -c link.yaml",
		Short: "Run a link: copy its tables into the lake, then keep them current until interrupted",
		Long: `sync copies every table of the link profile into the lake (initial sync, several
tables at once), then applies each table's changes within a second, until SIGINT or
SIGTERM, which commit what is in flight and stop cleanly. Edits of the profile's table
list are picked up while it runs.

With --once it brings every table up to date and exits: 0 when every table is
Completed, 2 when some failed (see lakelink status).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := config.Load(profile)
			if err != nil {
				return err
			}
			log := newLogger(verbose)
			bars := progress.New(os.Stderr)
			l, err := link.Open(cmd.Context(), p, link.Options{Logger: log, Progress: bars, Once: once, Reinit: reinit})
			if err != nil {
				bars.Close()
				return err
			}
			defer l.Close()
			log.Info("sync started", "link", p.Name, "lake", l.Store.Location(""), "tables", len(p.Tables))
			err = l.Run(cmd.Context())
			bars.Close()
			if err != nil {
				return err
			}
			if once {
				return onceResult(l.Engine.Status())
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&profile, "config", "c", "", "link profile (YAML)")
	cmd.Flags().BoolVar(&once, "once", false, "bring every table up to date, then exit")
	cmd.Flags().StringSliceVar(&reinit, "reinit", nil, "copy these tables afresh (comma-separated)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// onceResult turns the final status of `sync --once` into an exit code.
func onceResult(tables []engine.TableStatus) error {
	var failed []string
	for _, t := range tables {
		if t.State != engine.Completed {
			failed = append(failed, fmt.Sprintf("%s (%s: %s)", t.Name, t.State, t.Error))
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 2, msg: "not every table is Completed: " + strings.Join(failed, "; ")}
	}
	return nil
}

func newLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
