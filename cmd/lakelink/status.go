package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/source/postgres"
	"github.com/lakelink/lakelink/internal/store"
	"github.com/lakelink/lakelink/internal/sync"
)

func init() { commands = append(commands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	var (
		lf     lakeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status -c link.yaml",
		Short: "Show every table's state, row count, last synchronized on, lag and last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, p, err := lf.open()
			if err != nil {
				return err
			}
			r, err := sync.ReadReport(cmd.Context(), st, time.Now())
			if err != nil {
				return err
			}
			if p != nil && p.Source.Type == "postgres" {
				// An unreachable source is part of the report, not a
				// reason to hide every table's line (#15 case 12).
				r.Source, err = slotStatus(cmd.Context(), p)
				if err != nil {
					r.Source = &sync.SourceStatus{Error: err.Error()}
				}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printReport(os.Stdout, r, st)
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printReport(w io.Writer, r *sync.Report, st *store.Local) {
	running := "not running"
	if r.Running {
		running = "running"
	}
	fmt.Fprintf(w, "link %s (sync %s), lake %s\n\n", r.Link, running, st.Root())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATE\tROWS\tLAST SYNCHRONIZED ON\tLAG\tERROR")
	for _, t := range r.Tables {
		last, lag := "-", "-"
		if !t.LastSynchronized.IsZero() {
			last = t.LastSynchronized.UTC().Format("2006-01-02 15:04:05Z")
			lag = time.Duration(t.Lag).Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Name, t.State, t.Rows, last, lag, t.Error)
	}
	tw.Flush()
	if s := r.Source; s != nil && s.Error != "" {
		fmt.Fprintf(w, "\nreplication slot: cannot be read: %s\n", s.Error)
	} else if s != nil {
		fmt.Fprintf(w, "\nreplication slot: %s of WAL retained, lag %s\n", mib(s.Retained), time.Duration(s.Lag).Round(time.Millisecond))
		if s.Warning != "" {
			fmt.Fprintf(w, "WARNING: %s\n", s.Warning)
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// slotStatus reads how far the link's replication slot is behind.
func slotStatus(ctx context.Context, p *config.Link) (*sync.SourceStatus, error) {
	src, err := link.OpenSource(ctx, p, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	bytes, secs, err := src.(*postgres.Source).SlotLag(ctx)
	if err != nil {
		return nil, err
	}
	s := &sync.SourceStatus{Retained: bytes, Lag: sync.Duration(secs * float64(time.Second))}
	if bytes > sync.RetainedWarning {
		s.Warning = fmt.Sprintf("the replication slot retains %s of WAL (over %s): run lakelink sync for this link, or unlink it, before the source's disk fills", mib(bytes), mib(sync.RetainedWarning))
	}
	return s, nil
}
