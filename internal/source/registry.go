package source

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/schema"
)

// Params is what a connector's constructor receives.
type Params struct {
	// Profile is the validated link profile: the connector reads its
	// Source section, and the link's name and tables where it needs them.
	Profile *config.Link
	// Events receives what the table status shows while the source works;
	// nil when nobody shows it (lakelink status, unlink).
	Events Events
	// Logger is never nil when the constructor runs (Open supplies a
	// discarding one).
	Logger *slog.Logger
	// Committed holds the description of each table the lake has, as
	// last committed, by table name; nil when the lake was not read. A
	// connector whose columns have ids (schema.Column.SourceID) finds in
	// it what a rename while lakelink was stopped changed (PostgreSQL's
	// partition column).
	Committed map[string]*schema.Table
}

// connector is one registered source.type.
type connector struct {
	open func(ctx context.Context, p Params) (Source, error)
	// zero is a nil value of the connector's Source type: its method set
	// says which optional interfaces (Lifecycle, HealthReporter) the
	// connector implements, without connecting (Implements).
	zero any
}

var (
	registryMu sync.RWMutex
	registry   = map[string]connector{}
)

// Register makes a connector available under a profile's source.type.
// Connectors call it from an init function; the package that opens links
// (internal/link) imports them for that effect, so that nothing above the
// connectors names a concrete connector type. Registering one type twice
// panics: two connectors claiming one type is a build mistake.
func Register[S Source](typ string, open func(ctx context.Context, p Params) (S, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("source: type %q registered twice", typ))
	}
	var zero S
	registry[typ] = connector{
		open: func(ctx context.Context, p Params) (Source, error) {
			s, err := open(ctx, p)
			if err != nil {
				// Not s: a nil *T in a Source interface is not nil.
				return nil, err
			}
			return s, nil
		},
		zero: zero,
	}
}

func lookup(typ string) (connector, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	c, ok := registry[typ]
	return c, ok
}

// Open connects to the source the profile names, through the connector
// registered for its source.type.
func Open(ctx context.Context, p Params) (Source, error) {
	typ := p.Profile.Source.Type
	c, ok := lookup(typ)
	if !ok {
		return nil, fmt.Errorf("%s: source.type %q is not supported", p.Profile.File, typ)
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return c.open(ctx, p)
}

// Implements reports whether the connector registered for typ implements
// I, one of the optional interfaces (Lifecycle, HealthReporter). A command
// that only needs an optional hook asks first and opens no source (no
// connection, no request) for a connector without it. False for a type
// nobody registered.
func Implements[I any](typ string) bool {
	c, ok := lookup(typ)
	if !ok {
		return false
	}
	_, ok = c.zero.(I)
	return ok
}
