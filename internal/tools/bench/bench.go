// Package bench is `lakelink bench`: scenarios that measure lakelink against
// the floor of the same work in the same run (a raw page-through of the same
// API, a raw COPY), and write docs/benchmarks.md. Benchmarks report figures;
// they assert nothing (tests do that).
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lakelink/lakelink/internal/store"
)

// Options choose the scenarios and their sizes.
type Options struct {
	// Scenarios to run by name; empty runs all.
	Scenarios []string
	// Dir is the working folder (emulator data, lakes); emptied first.
	Dir string
	// Binary is the lakelink executable the sync scenarios run as a child
	// process, so that its peak memory is its own.
	Binary string
	// Sizes.
	Contacts  int // initial-sync scenario (default 1,000,000)
	Tables    int // many-tables scenario (default 300)
	TableRows int // rows per table there (default 1,000)
	Changes   int // latency scenario (default 1,000); the steady-state one makes at most 100
	// SteadyTables is the large table count of the steady-state scenario
	// (default 2,000); it compares it with 10 tables.
	SteadyTables int
	Rate         float64 // changes per second there (default 20)
	PGRows       int     // Postgres initial-copy scenario (default 5,000,000)
	PGUpdate     int     // Postgres bulk-update scenario (default 1,000,000)
	PGBench      time.Duration
	// Runs is how many times the Postgres throughput scenarios measure
	// lakelink and the floor (default 3); each reports the best of both.
	Runs int
	// Profile, when set, is the folder lakelink child processes write
	// their CPU and allocation profiles to.
	Profile string
	Log     io.Writer
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Contacts, 1_000_000)
	def(&o.Tables, 300)
	def(&o.TableRows, 1_000)
	def(&o.Changes, 1_000)
	def(&o.SteadyTables, 2_000)
	def(&o.PGRows, 5_000_000)
	def(&o.PGUpdate, 1_000_000)
	def(&o.Runs, 3)
	if o.Rate == 0 {
		o.Rate = 20
	}
	if o.PGBench == 0 {
		o.PGBench = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Section is one scenario's result, as written in docs/benchmarks.md.
type Section struct {
	Name string
	// What the scenario does, in a sentence or two.
	What string
	// Rows of the result table: metric, lakelink, floor, ratio, target.
	Rows [][5]string
	Note string
}

// scenario runs one measurement.
type scenario struct {
	name string
	run  func(ctx context.Context, o *Options) (*Section, error)
}

var scenarios []scenario

// Names lists the scenarios.
func Names() []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.name)
	}
	return out
}

// Run runs the chosen scenarios and returns their sections; a failed
// scenario yields a section that says how it failed.
func Run(ctx context.Context, o Options) ([]Section, error) {
	o.defaults()
	want := map[string]bool{}
	for _, s := range o.Scenarios {
		want[s] = true
	}
	for s := range want {
		if !strings.Contains(" "+strings.Join(Names(), " ")+" ", " "+s+" ") {
			return nil, fmt.Errorf("no scenario %q: choose from %s", s, strings.Join(Names(), ", "))
		}
	}
	if o.Profile != "" {
		abs, err := filepath.Abs(o.Profile)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("profile folder: %w", err)
		}
		o.Profile = abs
	}
	var out []Section
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(o.Log, "== %s\n", s.name)
		dir := filepath.Join(o.Dir, s.name)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		so := o
		so.Dir = dir
		sec, err := s.run(ctx, &so)
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			sec = &Section{Name: s.name, Note: "failed: " + err.Error()}
		}
		fmt.Fprintf(o.Log, "%s\n", render([]Section{*sec}, nil))
		out = append(out, *sec)
	}
	return out, nil
}

// child runs lakelink with args and returns its wall time and peak resident
// memory.
func child(ctx context.Context, o *Options, args ...string) (time.Duration, int64, error) {
	r, err := measure(ctx, o, args...)
	return r.wall, r.rss, err
}

// Environment variables by which `lakelink bench` asks a lakelink child to
// measure itself (cmd/lakelink reads them at start and writes at exit).
const (
	// ProfileEnv is a path prefix: the child writes PREFIX.cpu.pprof and
	// PREFIX.allocs.pprof; each SIGUSR2 ends the CPU profile and starts
	// the next, PREFIX.1.cpu.pprof, PREFIX.2.cpu.pprof...
	ProfileEnv = "LAKELINK_BENCH_PROFILE"
	// StatsEnv is a file the child writes its store.Stats to, as JSON.
	StatsEnv = "LAKELINK_BENCH_STATS"
)

// measured is what one lakelink child cost.
type measured struct {
	wall time.Duration
	rss  int64
	// cpu is user plus system time.
	cpu   time.Duration
	store store.Stats
}

// profiles numbers the children whose profiles go to Options.Profile.
var profiles atomic.Int64

// childEnv is the environment of a lakelink child: its store counters go
// to statsFile and, when Options.Profile is set, its profiles to files
// named after the lake folder and name.
func childEnv(o *Options, statsFile, name string) []string {
	env := append(os.Environ(), StatsEnv+"="+statsFile)
	if o.Profile != "" {
		prefix := filepath.Join(o.Profile, fmt.Sprintf("%s-%s", filepath.Base(o.Dir), name))
		env = append(env, ProfileEnv+"="+prefix)
		fmt.Fprintf(o.Log, "profiles: %s.{cpu,allocs}.pprof\n", prefix)
	}
	return env
}

// measure runs lakelink with args as a child process, with its store
// counters and, when Options.Profile is set, its CPU and allocation
// profiles, named after the command and a sequence number.
func measure(ctx context.Context, o *Options, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	n := profiles.Add(1)
	statsFile := filepath.Join(o.Dir, fmt.Sprintf(".stats-%d.json", n))
	cmd.Env = childEnv(o, statsFile, fmt.Sprintf("%s-%d", args[0], n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	var r measured
	r.wall = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("lakelink %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rss = ru.Maxrss * 1024 // Linux reports KiB
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if b, rerr := os.ReadFile(statsFile); rerr == nil {
		_ = json.Unmarshal(b, &r.store)
	}
	return r, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Machine describes where the figures were taken.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s, %s", cpu, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// quiesce flushes the page cache's dirty pages before a timed run: the
// setup (a table of millions of rows, under fsync=off) and earlier runs
// leave gigabytes whose writeback would otherwise take the CPU of
// whichever side runs while the kernel writes them.
func quiesce() { syscall.Sync() }

// runs are the times of one measurement repeated. The best of them is what
// the work costs: on a shared virtual machine a run sometimes pays for
// memory the host hands back (page faults, page-cache allocation), which
// the floor, writing nothing, pays less of; all of them are reported.
type runs []time.Duration

func (r runs) best() time.Duration { return slices.Min(r) }

func (r runs) String() string {
	out := make([]string, len(r))
	for i, d := range r {
		out[i] = secs(d)
	}
	return strings.Join(out, ", ")
}

func perSec(n int64, d time.Duration) string {
	return fmt.Sprintf("%.0f rows/s", float64(n)/d.Seconds())
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f x", a.Seconds()/b.Seconds())
}

// render formats sections as the body of docs/benchmarks.md.
func render(secs []Section, header []string) string {
	var b strings.Builder
	for _, h := range header {
		b.WriteString(h + "\n")
	}
	for _, s := range secs {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Name)
		if s.What != "" {
			b.WriteString(s.What + "\n\n")
		}
		if len(s.Rows) > 0 {
			b.WriteString("| metric | lakelink | floor (same run) | ratio | target |\n|---|---|---|---|---|\n")
			for _, r := range s.Rows {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3], r[4])
			}
		}
		if s.Note != "" {
			b.WriteString("\n" + s.Note + "\n")
		}
	}
	return b.String()
}

// Write writes docs/benchmarks.md (or path) with the sections, the command
// that produced them and the machine.
func Write(path, command string, secs []Section) error {
	header := []string{
		"# Benchmarks",
		"",
		"Written by `" + command + "` on " + time.Now().UTC().Format("2006-01-02 15:04 UTC") + ".",
		"",
		"Machine: " + Machine() + ".",
		"",
		"Every scenario measures lakelink and its floor (the same work done the plainest way) in the same run,",
		"on the same machine, so ratios hold even where absolute figures vary. Targets are those of docs/decisions.md.",
		"`--profile DIR` writes each lakelink child's CPU and allocation profiles (pprof) to DIR; every",
		"child also reports its store operations, fsyncs and bytes written (local.Stats) in the bench log.",
	}
	return os.WriteFile(path, []byte(render(secs, header)), 0o644)
}
