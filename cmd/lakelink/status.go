package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/source"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/store"
)

func init() { commands = append(commands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	var (
		lf     lakeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status -c link.yaml",
		Short: "Show every table's state, row count, last synchronized on, lag, reason and what to do",
		Long: `status lists every table of the lake with its state, row count (what select count(*)
returns), last synchronized on, lag, the reason of its state and since when, then what to
do for each table that needs it. While a sync runs it shows the sync's live view.

Exit codes: 0 when no table needs action; 1 when some table is Failed, Paused,
SourceUnreachable or LakeUnwritable, lake maintenance fails, or the source's replication
slot cannot be read or retains too much WAL (the report says what to do); 2 when the
lake's state cannot be read at all (no report).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, p, err := lf.open(cmd.Context())
			if err != nil {
				return &exitError{code: 2, msg: err.Error()}
			}
			r, err := engine.ReadReport(cmd.Context(), st, time.Now(), sqldb.CountRows)
			if err != nil {
				return &exitError{code: 2, msg: fmt.Sprintf("lake %s: %v", st.Location(""), err)}
			}
			if p != nil && source.Implements[source.HealthReporter](p.Source.Type) {
				// An unreachable source is part of the report, not a
				// reason to hide every table's line (#15 case 12).
				r.Source, err = sourceHealth(cmd.Context(), p)
				if err != nil {
					r.Source = &engine.SourceStatus{Error: err.Error()}
				}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printReport(os.Stdout, r, st)
			}
			if r.NeedsAction() {
				// The report says what; the exit code is for scripts.
				return &exitError{code: 1, silent: true}
			}
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printReport(w io.Writer, r *engine.Report, st store.Store) {
	running := "not running"
	if r.Running {
		running = "running"
	}
	fmt.Fprintf(w, "link %s (sync %s), lake %s\n\n", r.Link, running, st.Location(""))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATE\tROWS\tLAST SYNCHRONIZED ON\tLAG\tERROR")
	for _, t := range r.Tables {
		last, lag := "-", "-"
		if !t.LastSynchronized.IsZero() {
			last = t.LastSynchronized.UTC().Format(timeLayout)
			lag = time.Duration(t.Lag).Round(10 * time.Millisecond).String()
		}
		state := string(t.State)
		if t.Copied > 0 && (t.State == engine.InProgress || t.State == engine.Reinitialising) {
			// A copy's progress; ROWS is what readers count meanwhile
			// (a re-copy's old rows).
			state += fmt.Sprintf(" (%d copied)", t.Copied)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.Name, state, t.Rows, last, lag, oneLine(t.Error))
	}
	tw.Flush()
	// What to do, table by table: the table above is for scanning, this
	// for acting.
	first := true
	for _, t := range r.Tables {
		if t.Action == "" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nneeds attention:")
			first = false
		}
		since := ""
		if !t.Since.IsZero() {
			since = " since " + t.Since.UTC().Format(timeLayout)
		}
		fmt.Fprintf(w, "  %s: %s%s: %s\n    action: %s\n", t.Name, t.State, since, t.Error, t.Action)
	}
	if m := r.Maintenance; m != nil {
		fmt.Fprintf(w, "\nlake maintenance failing since %s: %s\n  action: %s\n", m.Since.UTC().Format(timeLayout), m.Error, m.Action)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nwarning: %s\n", warn)
	}
	if s := r.Source; s != nil && s.Error != "" {
		fmt.Fprintf(w, "\nreplication slot: cannot be read: %s\n", s.Error)
	} else if s != nil {
		fmt.Fprintf(w, "\nreplication slot: %s of WAL retained, lag %s\n", mib(s.Retained), time.Duration(s.Lag).Round(time.Millisecond))
		if s.Warning != "" {
			fmt.Fprintf(w, "WARNING: %s\n", s.Warning)
		}
	}
}

// timeLayout is how status prints times: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05Z"

// oneLine keeps a table line on one line: an error's line breaks become
// spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// sourceHealth reads what the link's source holds back for it (a
// replication slot's retained WAL and lag); the caller checked that the
// connector implements source.HealthReporter.
func sourceHealth(ctx context.Context, p *config.Link) (*engine.SourceStatus, error) {
	src, err := link.OpenSource(ctx, p, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	hr, ok := src.(source.HealthReporter)
	if !ok {
		return nil, fmt.Errorf("source type %s reports no health", p.Source.Type)
	}
	h, err := hr.Health(ctx)
	if err != nil {
		return nil, err
	}
	s := &engine.SourceStatus{Retained: h.Retained, Lag: engine.Duration(h.Lag)}
	if h.Retained > engine.RetainedWarning {
		s.Warning = fmt.Sprintf("the replication slot retains %s of WAL (over %s): run lakelink sync for this link, or unlink it, before the source's disk fills", mib(h.Retained), mib(engine.RetainedWarning))
	}
	return s, nil
}
