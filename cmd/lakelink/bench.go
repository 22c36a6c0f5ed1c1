package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/store/local"
	"github.com/lakelink/lakelink/internal/tools/bench"
)

func init() { commands = append(commands, newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var (
		o   bench.Options
		out string
	)
	cmd := &cobra.Command{
		Use:   "bench [--scenario NAME ...]",
		Short: "Run the benchmark scenarios against their floors and write docs/benchmarks.md",
		Long: "bench runs each scenario and the floor of the same work in the same run, prints the figures and\n" +
			"writes them with the command line and the machine to docs/benchmarks.md.\n\nScenarios: " + strings.Join(bench.Names(), ", "),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary = exe
			o.Log = os.Stderr
			secs, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if out == "" {
				return nil
			}
			if err := bench.Write(out, "lakelink "+strings.Join(os.Args[1:], " "), secs); err != nil {
				return err
			}
			fmt.Printf("wrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Scenarios, "scenario", nil, "scenarios to run (default all)")
	f.StringVar(&o.Dir, "dir", os.TempDir()+"/lakelink-bench", "working folder, emptied first")
	f.StringVar(&out, "out", "docs/benchmarks.md", "where to write the results (empty: do not write)")
	f.IntVar(&o.Contacts, "contacts", 0, "contacts in the Dataverse initial-sync scenario (default 1000000)")
	f.IntVar(&o.Tables, "tables", 0, "tables in the many-tables scenario (default 300)")
	f.IntVar(&o.TableRows, "table-rows", 0, "rows per table there (default 1000)")
	f.IntVar(&o.Changes, "changes", 0, "single-row changes in the latency scenario (default 1000; the steady-state scenario makes at most 100)")
	f.IntVar(&o.SteadyTables, "steady-tables", 0, "tables of the steady-state scenario, compared with 10 (default 2000)")
	f.Float64Var(&o.Rate, "rate", 0, "changes per second there (default 20)")
	f.IntVar(&o.PGRows, "pg-rows", 0, "rows of the Postgres initial-copy scenario (default 5000000)")
	f.IntVar(&o.PGUpdate, "pg-update", 0, "rows of the Postgres bulk-update scenario (default 1000000)")
	f.DurationVar(&o.PGBench, "pgbench-time", 0, "duration of the pgbench lag scenario (default 60s)")
	f.StringVar(&o.Profile, "profile", "", "folder for CPU and allocation profiles (pprof) of every lakelink child process")
	f.IntVar(&o.Runs, "runs", 0, "runs of the Postgres initial-copy and bulk-update scenarios, best reported (default 3)")
	return cmd
}

// startProfile starts what the environment asks `lakelink bench` children
// to measure of themselves (see bench.ProfileEnv and bench.StatsEnv) and
// returns the function that writes it at exit. Without those variables it
// does nothing.
func startProfile() func() {
	prefix, statsFile := os.Getenv(bench.ProfileEnv), os.Getenv(bench.StatsEnv)
	if prefix == "" && statsFile == "" {
		return func() {}
	}
	var (
		cpuMu sync.Mutex
		cpu   *os.File
	)
	startCPU := func(name string) {
		f, err := os.Create(name)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			cpu = f
		} else {
			fmt.Fprintf(os.Stderr, "lakelink: no CPU profile at %s: %v\n", name, err)
		}
	}
	stopCPU := func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			_ = cpu.Close()
			cpu = nil
		}
	}
	if prefix != "" {
		startCPU(prefix + ".cpu.pprof")
		// SIGUSR2 ends the CPU profile so far and starts the next,
		// PREFIX.1.cpu.pprof, PREFIX.2...: the steady-state bench
		// profiles the idle sync alone (bench.ProfileEnv).
		usr2 := make(chan os.Signal, 1)
		signal.Notify(usr2, syscall.SIGUSR2)
		go func() {
			for n := 1; ; n++ {
				<-usr2
				cpuMu.Lock()
				stopCPU()
				startCPU(fmt.Sprintf("%s.%d.cpu.pprof", prefix, n))
				cpuMu.Unlock()
			}
		}()
	}
	writeStats := func() {
		if b, err := json.Marshal(local.Stats()); err == nil {
			_ = os.WriteFile(statsFile, b, 0o644)
		}
	}
	if statsFile != "" {
		// The steady-state bench reads a running sync's counters between
		// its phases.
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeStats()
			}
		}()
	}
	return func() {
		cpuMu.Lock()
		stopCPU()
		cpuMu.Unlock()
		if prefix != "" {
			if f, err := os.Create(prefix + ".allocs.pprof"); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}
		if statsFile != "" {
			writeStats()
		}
	}
}
