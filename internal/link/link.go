// Package link turns a link profile into a running link: it opens the
// profile's source and lake and runs the sync engine over them, reloading
// the profile's table list when the file changes.
package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/lease"
	"github.com/lakelink/lakelink/internal/schema"
	"github.com/lakelink/lakelink/internal/source"
	// The connectors a link can open: each registers its source.type.
	_ "github.com/lakelink/lakelink/internal/source/dataverse"
	_ "github.com/lakelink/lakelink/internal/source/postgres"
	"github.com/lakelink/lakelink/internal/store"
	// The stores a profile's lake may name: each registers its URL scheme.
	"github.com/lakelink/lakelink/internal/engine"
	_ "github.com/lakelink/lakelink/internal/store/azure"
	_ "github.com/lakelink/lakelink/internal/store/local"
)

// Options tune Open beyond the profile.
type Options struct {
	Logger   *slog.Logger
	Progress engine.Progress
	Once     bool
	Reinit   []string
	// Instrument, when set, decorates what Open opens (lakelink serve's
	// metrics, package metrics): the link runs on what it returns.
	Instrument Instrument
}

// Instrument decorates a link's source and the source's events. Each
// method returns its argument or a wrapper that keeps its contract and
// the optional interfaces the engine asks for (source.Joiner).
type Instrument interface {
	Source(source.Source) source.Source
	Events(source.Events) source.Events
}

// Link is an opened link profile.
type Link struct {
	Profile *config.Link
	Store   store.Store
	Lake    *lake.Lake
	Source  source.Source
	Engine  *engine.Engine
	lease   *lease.Lease
	log     *slog.Logger
}

// Open connects to the profile's source and opens its lake.
func Open(ctx context.Context, p *config.Link, opts Options) (*Link, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := OpenStore(ctx, p)
	if err != nil {
		return nil, err
	}
	// One writer per lake: a second sync refuses here, naming the first,
	// before it touches the lake or the source.
	ls, err := lease.Acquire(ctx, st, lease.Options{})
	if err != nil {
		return nil, fmt.Errorf("lake %s: %w", st.Location(""), err)
	}
	lo, err := LakeOptions(p, log)
	if err != nil {
		ls.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	lk, err := lake.Open(ctx, st, lo)
	if err != nil {
		ls.Release(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("lake %s: %w", st.Location(""), err)
	}
	eng := engine.New(engine.Config{
		Tables:   Specs(p),
		Workers:  p.Sync.Workers,
		Once:     opts.Once,
		Reinit:   opts.Reinit,
		Logger:   log,
		Progress: opts.Progress,
	})
	// The committed descriptions let a source find a table's columns
	// again after a rename while lakelink was stopped (#15 case 5).
	committed := map[string]*schema.Table{}
	for name, ts := range lk.State().Tables {
		committed[name] = ts.Source
	}
	var events source.Events = eng
	if opts.Instrument != nil {
		events = opts.Instrument.Events(events)
	}
	src, err := source.Open(ctx, source.Params{Profile: p, Events: events, Logger: log, Committed: committed})
	if err != nil {
		lk.Close()
		ls.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	if opts.Instrument != nil {
		src = opts.Instrument.Source(src)
	}
	return &Link{Profile: p, Store: st, Lake: lk, Source: src, Engine: eng, lease: ls, log: log}, nil
}

// OpenStore opens the profile's lake (lake.path or lake.url) with the store
// registered for its scheme.
func OpenStore(ctx context.Context, p *config.Link) (store.Store, error) {
	st, err := store.Open(ctx, p.LakeLocation())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	return st, nil
}

// LakeOptions derives the lake's options from the profile: its format is
// the one registered under the profile's format key, made from the
// profile.
func LakeOptions(p *config.Link, log *slog.Logger) (lake.Options, error) {
	f, err := OpenFormat(p)
	if err != nil {
		return lake.Options{}, err
	}
	return lake.Options{Link: p.Name, Logger: log, Format: f}, nil
}

// OpenFormat makes the lake format the profile names (p nil: the default
// format, for a lake opened without its profile).
func OpenFormat(p *config.Link) (lake.Format, error) {
	name, file := lake.DefaultFormat, "lake"
	if p != nil {
		name, file = p.Format, p.File
	}
	f, err := lake.OpenFormat(name, lake.FormatParams{Profile: p})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return f, nil
}

// Specs derives the engine's table list from the profile.
func Specs(p *config.Link) []engine.Spec {
	out := make([]engine.Spec, 0, len(p.Tables))
	for _, t := range p.Tables {
		g := lake.Year
		if t.Partition == "month" {
			g = lake.Month
		}
		out = append(out, engine.Spec{Name: t.Name, Options: lake.TableOptions{
			AppendOnly:  t.AppendOnly || p.IncrementalFolders.Enabled,
			Granularity: g,
		}})
	}
	return out
}

// OpenSource connects to the profile's source through the connector
// registered for its source.type; events receives throttling.
func OpenSource(ctx context.Context, p *config.Link, events source.Events, log *slog.Logger) (source.Source, error) {
	return source.Open(ctx, source.Params{Profile: p, Events: events, Logger: log})
}

// Unlink removes a link that is not running: the objects its source keeps
// for it in the source environment (a Postgres slot and publication), its
// state in the lake and, with deleteData, the lake's data files. It
// refuses while a sync of the link runs, in any process.
func Unlink(ctx context.Context, p *config.Link, deleteData bool) error {
	st, err := OpenStore(ctx, p)
	if err != nil {
		return err
	}
	return UnlinkStore(ctx, st, p, deleteData)
}

// UnlinkStore is Unlink of the lake in st; p may be nil (a lake named
// without its profile), when the source's objects stay.
func UnlinkStore(ctx context.Context, st store.Store, p *config.Link, deleteData bool) error {
	r, err := engine.ReadReport(ctx, st, time.Now(), nil)
	if err != nil {
		return err
	}
	if r.Running {
		return fmt.Errorf("a sync of link %s is running on %s: stop it first (Ctrl-C or SIGTERM)", r.Link, st.Location(""))
	}
	if p != nil && source.Implements[source.Lifecycle](p.Source.Type) {
		if err := sourceDeleted(ctx, p); err != nil {
			return err
		}
	}
	f, err := OpenFormat(p)
	if err != nil {
		return err
	}
	return lake.Unlink(ctx, st, f, deleteData)
}

// sourceDeleted removes what the link's source keeps for it in the source
// environment; the caller checked that the connector implements
// source.Lifecycle.
func sourceDeleted(ctx context.Context, p *config.Link) error {
	src, err := OpenSource(ctx, p, nil, slog.Default())
	if err != nil {
		return fmt.Errorf("dropping the replication slot: %w", err)
	}
	defer src.Close()
	lc, ok := src.(source.Lifecycle)
	if !ok {
		return fmt.Errorf("source type %s has no lifecycle hooks", p.Source.Type)
	}
	return lc.Deleted(ctx)
}

// reloadEvery is how often a running link looks for profile edits.
const reloadEvery = 2 * time.Second

// Run syncs until ctx ends (or until done, with Options.Once). Edits of the
// profile's table list are picked up while it runs; an invalid edit is
// logged and ignored.
func (l *Link) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go l.watch(ctx)
	lost := make(chan struct{})
	go func() {
		select {
		case <-l.lease.Lost():
			close(lost)
			cancel()
		case <-ctx.Done():
		}
	}()
	err := l.Engine.Run(ctx, l.Source, l.Lake, l.Store)
	select {
	case <-lost:
		return fmt.Errorf("lake %s: %w", l.Store.Location(""), lease.ErrLost)
	default:
		return err
	}
}

func (l *Link) watch(ctx context.Context) {
	if l.Profile.File == "" {
		return
	}
	last := modTime(l.Profile.File)
	tick := time.NewTicker(reloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m := modTime(l.Profile.File)
		if m.Equal(last) {
			continue
		}
		last = m
		p, err := config.Load(l.Profile.File)
		if err != nil {
			l.log.Error("profile changed but is invalid: keeping the running tables", "err", err)
			continue
		}
		l.log.Info("profile changed: updating the linked tables", "tables", len(p.Tables))
		l.Engine.SetTables(Specs(p))
	}
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// Close releases the source, the lake and the lake's writer lease.
func (l *Link) Close() error {
	serr := l.Source.Close()
	lerr := l.Lake.Close()
	rerr := l.lease.Release(context.Background())
	return errors.Join(serr, lerr, rerr)
}
