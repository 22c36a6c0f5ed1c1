package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/serve"
)

func init() { commands = append(commands, newServeCmd, newTokenCmd) }

func newServeCmd() *cobra.Command {
	var (
		file    string
		o       serve.Options
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "serve --dir DIR | --config FILE",
		Short: "Run every link of a links directory in one service, with an HTTP API, a web UI and metrics",
		Long: `serve runs every link profile of the links directory (--dir, or links_dir of the
--config service file) in one process, each with its own engine; a link that fails
is opened again while the others go on. Links are created, changed and deleted at
run time through the API (/api/v1, OpenAPI at /api/v1/openapi.json) or the web UI
(/), and written to the directory as the profiles lakelink sync -c reads.
SIGINT or SIGTERM stop it: each link commits what is in flight. See docs/serve.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				svc, err := config.LoadService(file)
				if err != nil {
					return err
				}
				fromService(cmd, &o, svc)
			}
			if o.LinksDir == "" {
				return errors.New("name the links: --dir DIR or --config lakelink.yaml")
			}
			if o.Listen == "" {
				o.Listen = config.DefaultListen
			}
			o.Logger = newLogger(verbose)
			return serve.Run(cmd.Context(), o, func(addr string) {
				fmt.Fprintf(cmd.ErrOrStderr(), "lakelink serve: listening on %s\n", addr)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "service file (YAML: links_dir, listen, tls_cert, tls_key, tokens, audit_log, trust_proxy)")
	f.StringVar(&o.LinksDir, "dir", "", "links directory: one profile <name>.yaml per link")
	f.StringVar(&o.Listen, "listen", "", "listen address (default "+config.DefaultListen+"; off loopback --tokens is required)")
	f.StringVar(&o.Tokens, "tokens", "", "file of hashed bearer tokens (lakelink token create)")
	f.StringVar(&o.TLSCert, "tls-cert", "", "PEM certificate: serve HTTPS")
	f.StringVar(&o.TLSKey, "tls-key", "", "PEM key of --tls-cert")
	f.StringVar(&o.AuditLog, "audit-log", "", "audit log file (default audit.log in the links directory)")
	f.BoolVar(&o.TrustProxy, "trust-proxy", false, "take client addresses from X-Forwarded-For (behind a reverse proxy)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	return cmd
}

// fromService fills the options the flags left unset from the service
// file: a flag given on the command line wins.
func fromService(cmd *cobra.Command, o *serve.Options, s *config.Service) {
	set := func(flag string, dst *string, v string) {
		if !cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	set("dir", &o.LinksDir, s.LinksDir)
	set("listen", &o.Listen, s.Listen)
	set("tokens", &o.Tokens, s.Tokens)
	set("tls-cert", &o.TLSCert, s.TLSCert)
	set("tls-key", &o.TLSKey, s.TLSKey)
	set("audit-log", &o.AuditLog, s.AuditLog)
	if !cmd.Flags().Changed("trust-proxy") {
		o.TrustProxy = s.TrustProxy
	}
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage serve's bearer tokens"}
	var (
		file, role, name string
	)
	create := &cobra.Command{
		Use:   "create --role admin|reader --name NAME --file tokens",
		Short: "Create a bearer token: its hash goes to the tokens file, the token is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := serve.ParseRole(role)
			if err != nil {
				return err
			}
			tok, err := serve.CreateToken(file, r, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s) added to %s; it is shown only now\n", name, r, file)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "reader", "admin (everything) or reader (status and SQL)")
	create.Flags().StringVar(&name, "name", "", "who the token is for (shown in the audit log)")
	create.Flags().StringVar(&file, "file", "tokens", "tokens file, created if missing")
	_ = create.MarkFlagRequired("name")
	cmd.AddCommand(create)
	return cmd
}
