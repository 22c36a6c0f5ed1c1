package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/tools/emulator"
)

func init() { commands = append(commands, newEmulatorCmd) }

func newEmulatorCmd() *cobra.Command {
	var (
		listen  string
		verbose bool
		cfg     emulator.Config
	)
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run a local Dataverse Web API emulator with Dynamics 365 Sales sample data",
		Long: `Run a local stand-in for a Dataverse environment: table metadata, CRUD and
change tracking (delta links) of the Web API v9.2 over accounts, contacts,
leads, opportunities, systemusers, accountleads and competitors. Data is
generated at first start from --seed and --scale and kept in --data across
restarts. Faults (throttling, errors, latency, token expiry) can be set by
flags or at run time with PUT /admin/faults. See docs/emulator.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return runEmulator(cmd.Context(), cmd, listen, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve on")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every request")
	f.StringVar(&cfg.Dir, "data", "emulator-data", "state directory (created if missing; kept across restarts)")
	f.IntVar(&cfg.Scale, "scale", emulator.DefaultScale, "rows per main table generated at first start")
	f.Int64Var(&cfg.Seed, "seed", 1, "sample data seed (same seed and scale give the same data)")
	f.StringVar(&cfg.Token, "token", "", "require 'Authorization: Bearer <token>' on /api requests")
	f.Float64Var(&cfg.Faults.ThrottleRate, "throttle-rate", 0, "fraction of /api requests answered 429")
	f.DurationVar(&cfg.Faults.RetryAfter, "retry-after", time.Second, "Retry-After of throttled answers")
	f.Float64Var(&cfg.Faults.ErrorRate, "error-rate", 0, "fraction of /api requests answered 503 or 500")
	f.DurationVar(&cfg.Faults.Latency, "latency", 0, "latency added to every /api answer")
	f.DurationVar(&cfg.Faults.TokenMaxAge, "token-max-age", 0, "reject delta tokens older than this as expired (0: never)")
	return cmd
}

func runEmulator(ctx context.Context, cmd *cobra.Command, listen string, cfg emulator.Config) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "opening %s (a new directory gets sample data of scale %d, seed %d)...\n", cfg.Dir, cfg.Scale, cfg.Seed)
	e, err := emulator.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("emulator: listen on %s (is the port in use? choose another with --listen): %w", listen, err)
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	auth := ""
	if cfg.Token != "" {
		auth = fmt.Sprintf(" -H 'Authorization: Bearer %s'", cfg.Token)
	}
	fmt.Fprintf(out, `Dataverse emulator serving %[1]s (Web API: %[1]s/api/data/v9.2/)
Try:
  curl -s%[2]s '%[1]s/api/data/v9.2/EntityDefinitions?$select=LogicalName,EntitySetName,ChangeTrackingEnabled'
  curl -s%[2]s -H 'Prefer: odata.track-changes, odata.maxpagesize=2' '%[1]s/api/data/v9.2/accounts?$select=name,revenue'
  curl -s%[2]s -X POST -H 'Content-Type: application/json' -d '{"name":"New account"}' -i '%[1]s/api/data/v9.2/accounts'
  curl -s -X PUT -d '{"throttle_rate":0.1,"retry_after":"2s"}' '%[1]s/admin/faults'
  curl -s '%[1]s/admin/stats'
Stop with Ctrl-C.
`, url, auth)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("emulator: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulator: shut down: %w", err)
	}
	fmt.Fprintln(out, "emulator stopped; data kept in", cfg.Dir)
	return nil
}
