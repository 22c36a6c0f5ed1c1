// Package demo is `lakelink demo`: the whole walkthrough on embedded
// defaults. It starts the Dataverse emulator with the Sales sample, links
// account, contact and opportunity into a lake, changes a few rows through
// the Web API and shows how long each change takes to reach SQL.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/progress"
	"github.com/lakelink/lakelink/internal/sqldb"
	"github.com/lakelink/lakelink/internal/tools/emulator"
)

// Options tune the demo.
type Options struct {
	// Dir holds the emulator's data, the profile and the lake; it is
	// created, and emptied first if an earlier demo left it.
	Dir string
	// Scale is the number of rows per main table of the sample.
	Scale int
	Out   io.Writer
	// Progress is where the initial sync's bars go (os.Stderr).
	Progress io.Writer
	Logger   *slog.Logger
}

// marker tells a folder the demo made from one it must not empty.
const marker = ".lakelink-demo"

// profile is the demo's link profile; %s is the emulator's URL.
const profile = `# The demo's link profile: edit it and run lakelink sync -c on it.
name: demo
source:
  type: dataverse
  url: %s
  poll_interval: 100ms
  max_poll_interval: 1s
  requests_per_second: 200
lake:
  path: ./lake
tables:
  - name: account
  - name: contact
  - name: opportunity
    partition: month
snapshots:
  interval: 1h
  keep: 5
`

// Run runs the walkthrough.
func Run(ctx context.Context, o Options) error {
	if err := prepare(o.Dir); err != nil {
		return err
	}
	out := o.Out
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(out, "\n[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}

	step("Starting the Dataverse emulator with the Dynamics 365 Sales sample (%d rows per table)...", o.Scale)
	emu, err := emulator.Open(ctx, emulator.Config{Dir: filepath.Join(o.Dir, "emulator"), Scale: o.Scale, Seed: 1, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("starting the emulator: %w", err)
	}
	defer emu.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "         emulator at %s/api/data/v9.2/\n", url)

	profilePath := filepath.Join(o.Dir, "link.yaml")
	if err := os.WriteFile(profilePath, []byte(fmt.Sprintf(profile, url)), 0o644); err != nil {
		return err
	}
	p, err := config.Load(profilePath)
	if err != nil {
		return err
	}
	step("Linking account, contact and opportunity into %s (initial sync)...", p.LakeLocation())
	bars := progress.New(o.Progress)
	l, err := link.Open(ctx, p, link.Options{Logger: o.Logger, Progress: bars})
	if err != nil {
		bars.Close()
		return err
	}
	defer l.Close()
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(runCtx) }()
	defer func() {
		stop()
		<-runErr
	}()
	if err := waitCompleted(ctx, l.Engine, runErr); err != nil {
		bars.Close()
		return err
	}
	bars.Close()
	step("Initial sync completed.")

	db, err := sqldb.Open(ctx, l.Store, lake.NewReader(l.Store).State)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := show(ctx, out, db, `SELECT 'account' AS "table", count(*) AS "rows" FROM account
UNION ALL SELECT 'contact', count(*) FROM contact
UNION ALL SELECT 'opportunity', count(*) FROM opportunity`); err != nil {
		return err
	}

	step("Changing rows through the Dataverse Web API and timing how long each takes to show up in SQL:")
	c := &Client{URL: url}
	if err := timeChanges(ctx, out, c, db); err != nil {
		return err
	}

	step("A query that joins choice labels from OptionsetMetadata:")
	if err := show(ctx, out, db, SampleQuery); err != nil {
		return err
	}

	step("Done. The lake folder, in the Azure Synapse Link layout: %s", p.LakeLocation())
	fmt.Fprintf(out, `
Try:
  go run ./cmd/lakelink query --lake %[1]s "SELECT fullname, emailaddress1 FROM contact LIMIT 5"
  go run ./cmd/lakelink status --lake %[1]s
  ls %[1]s
`, p.LakeLocation())
	return nil
}

// SampleQuery is the demo's join of a choice column with its labels.
const SampleQuery = `SELECT m.LocalizedLabel AS sales_stage, count(*) AS opportunities, sum(o.estimatedvalue) AS estimated_value
FROM opportunity o
JOIN OptionsetMetadata m
  ON m.EntityName = 'opportunity' AND m.OptionSetName = 'salesstage'
 AND m.Option = o.salesstage AND m.LocalizedLabelLanguageCode = 1033
GROUP BY m.LocalizedLabel, o.salesstage
ORDER BY o.salesstage`

// prepare makes dir ready for a fresh demo.
func prepare(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			entries, _ := os.ReadDir(dir)
			if len(entries) > 0 {
				return fmt.Errorf("%s exists and was not made by lakelink demo: choose another --dir", dir)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), nil, 0o644)
}

// waitCompleted waits until every table finished its initial sync and was
// caught up once.
func waitCompleted(ctx context.Context, e *engine.Engine, runErr <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runErr:
			if err == nil {
				err = errors.New("the sync stopped")
			}
			return err
		case <-tick.C:
		}
		st := e.Status()
		done := len(st) == 3
		for _, t := range st {
			if t.State == engine.Failed {
				return fmt.Errorf("table %s failed: %s", t.Name, t.Error)
			}
			if t.State != engine.Completed {
				done = false
			}
		}
		if done {
			return nil
		}
	}
}

// DemoNote is the multi-line description (CR LF, as Dynamics stores notes)
// of the contact the demo creates and keeps.
const DemoNote = "Rear admiral.\r\nWrote the first compiler."

// timeChanges creates, updates and deletes a contact and an opportunity and
// prints how long each change took to be visible in SQL.
func timeChanges(ctx context.Context, out io.Writer, c *Client, db *sqldb.DB) error {
	type change struct {
		what  string
		apply func() error
		query string
		want  func(*sql.Rows) (bool, error)
	}
	var id string
	one := func(rows *sql.Rows) (bool, error) { return rows.Next(), rows.Err() }
	none := func(rows *sql.Rows) (bool, error) { return !rows.Next(), rows.Err() }
	changes := []change{
		{"create contact 'Ada Lovelace'", func() (err error) {
			id, err = c.Create(ctx, "contacts", map[string]any{"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com"})
			return err
		}, "SELECT 1 FROM contact WHERE Id = ?", one},
		{"update her e-mail address", func() error {
			return c.Update(ctx, "contacts", id, map[string]any{"emailaddress1": "ada.lovelace@example.com"})
		}, "SELECT 1 FROM contact WHERE Id = ? AND emailaddress1 = 'ada.lovelace@example.com'", one},
		{"delete her", func() error {
			return c.Delete(ctx, "contacts", id)
		}, "SELECT 1 FROM contact WHERE Id = ?", none},
		// A multi-line note as Dynamics stores one (CR LF): it stays in the
		// lake, and SQL returns it byte for byte.
		{"create 'Grace Hopper', 2-line note", func() (err error) {
			id, err = c.Create(ctx, "contacts", map[string]any{"firstname": "Grace", "lastname": "Hopper", "description": DemoNote})
			return err
		}, "SELECT 1 FROM contact WHERE Id = ? AND description = 'Rear admiral.' || chr(13) || chr(10) || 'Wrote the first compiler.'", one},
	}
	for _, ch := range changes {
		if err := ch.apply(); err != nil {
			return fmt.Errorf("%s: %w", ch.what, err)
		}
		d, err := waitVisible(ctx, db, ch.query, id, ch.want)
		if err != nil {
			return fmt.Errorf("%s: %w", ch.what, err)
		}
		fmt.Fprintf(out, "         %-32s visible in SQL after %s\n", ch.what, d.Round(time.Millisecond))
	}
	return nil
}

// visibleWithin bounds how long the demo waits for a change.
const visibleWithin = 30 * time.Second

func waitVisible(ctx context.Context, db *sqldb.DB, query, id string, want func(*sql.Rows) (bool, error)) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < visibleWithin {
		rows, err := db.Query(ctx, query, id)
		if err != nil {
			return 0, err
		}
		ok, err := want(rows)
		rows.Close()
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("not visible in SQL after %s", visibleWithin)
}

// show prints a query's result as a table.
func show(ctx context.Context, out io.Writer, db *sqldb.DB, query string) error {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqldb.Format(out, rows, "table")
}
