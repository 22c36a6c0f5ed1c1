// Command lakelink mirrors an operational data source into a data lake in the
// Azure Synapse Link layout and makes it queryable with SQL. The commands are
// thin: each one parses flags and calls into internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says otherwise:
// lakelink streams, and its live heap stays well below the 512 MB target of docs/decisions.md
// budget, but with the collector's default pacing a burst of garbage (a
// million-row transaction) took the process past it (591 MiB measured).
const memoryLimit = 384 << 20

// gcPercent is the collector's GOGC unless the environment sets one.
// lakelink's live heap is small (tens of MiB) while it allocates fast (a row
// a microsecond during a copy), so the default of 100 collects every few
// milliseconds: measured on a 5M-row copy, 400 cut user CPU by a fifth
// (5.5 s to 4.3 s). memoryLimit still bounds the heap.
const gcPercent = 400

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	endProfile := startProfile()
	err := newRoot().ExecuteContext(ctx)
	endProfile()
	if err != nil {
		var ee *exitError
		if !errors.As(err, &ee) || !ee.silent {
			fmt.Fprintln(os.Stderr, "lakelink:", err)
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "lakelink",
		Short:         "Mirror Dataverse or PostgreSQL tables into a Synapse-layout data lake, queryable with SQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands holds the constructors of the subcommands; each command's file
// registers its own in an init function, so that adding a command touches
// one file.
var commands []func() *cobra.Command
