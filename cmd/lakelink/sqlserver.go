package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/endpoint"
	_ "github.com/lakelink/lakelink/internal/endpoint/pgwire" // registers "postgres"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/sqldb"
)

func init() { commands = append(commands, newSQLServerCmd) }

func newSQLServerCmd() *cobra.Command {
	var (
		lf                lakeFlags
		listen            string
		certFile, keyFile string
		usersFile         string
		limits            = endpoint.DefaultLimits
	)
	cmd := &cobra.Command{
		Use:   "sql-server -c link.yaml [--listen 127.0.0.1:5433]",
		Short: "Serve the read-only lake database over the PostgreSQL protocol (psql, pgx, BI tools)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			users, err := endpoint.ReadUsers(usersFile)
			if err != nil {
				return err
			}
			if err := endpoint.CheckListen(listen, users); err != nil {
				return err
			}
			var tlsConf *tls.Config
			if certFile != "" || keyFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("load the TLS certificate (--tls-cert %s, --tls-key %s): %w", certFile, keyFile, err)
				}
				tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			if users != nil && tlsConf == nil {
				return errors.New("--users needs --tls-cert and --tls-key: passwords are taken over TLS only")
			}
			st, _, err := lf.open(ctx)
			if err != nil {
				return err
			}
			reader := lake.NewReader(st)
			state, err := reader.State(ctx)
			if err != nil {
				return err
			}
			db, err := sqldb.Open(ctx, st, reader.State)
			if err != nil {
				return err
			}
			defer db.Close()
			ep, err := endpoint.New("postgres", endpoint.Config{DB: db, Name: state.Link, TLS: tlsConf, Users: users, Limits: limits})
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			host, port, _ := net.SplitHostPort(l.Addr().String())
			fmt.Fprintf(cmd.ErrOrStderr(), "lakelink sql-server: serving the lake database of %s on %s: psql \"host=%s port=%s dbname=%s\"\n", st.Location(""), l.Addr(), host, port, state.Link)
			return ep.Serve(ctx, l)
		},
	}
	lf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:5433", "address to listen on; other than loopback needs --users")
	f.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM) offered to clients that ask for TLS")
	f.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	f.StringVar(&usersFile, "users", "", "file of user:password lines; clients must then log in over TLS")
	f.DurationVar(&limits.QueryTimeout, "query-timeout", limits.QueryTimeout, "end a query that runs longer (0: no limit)")
	f.Int64Var(&limits.MaxRows, "max-rows", limits.MaxRows, "fail a query whose result has more rows (0: no limit)")
	f.IntVar(&limits.MaxQueries, "max-queries", limits.MaxQueries, "queries that run at once; others wait")
	f.IntVar(&limits.MaxQueued, "max-queued", limits.MaxQueued, "queries that may wait for a turn; more fail at once")
	f.IntVar(&limits.MaxConnections, "max-connections", limits.MaxConnections, "open connections (0: no limit)")
	return cmd
}
