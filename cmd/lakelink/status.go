package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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
			st, err := lf.store()
			if err != nil {
				return err
			}
			r, err := sync.ReadReport(cmd.Context(), st, time.Now())
			if err != nil {
				return err
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
}
