// Package metrics is lakelink serve's Prometheus instrumentation. It
// measures links from the outside, so the engine and the connectors carry
// no metrics code: a decorator of each link's source counts the changes
// the engine commits and times each commit (a source's emit returns only
// once its batch is durably in the lake), a decorator of the source's
// events counts throttles and unreachable retries, and a collector reads
// each running engine's status (rows, lag, state) and the source's health
// (a replication slot's retained WAL) when Prometheus scrapes.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/source"
)

// Link is what the collector reads of one link when scraped.
type Link struct {
	Name string
	// Running is false while the link is paused, retrying or invalid;
	// Engine and Health are then nil.
	Running bool
	Engine  *engine.Engine
	// Health is the link's source when it reports health (PostgreSQL).
	Health source.HealthReporter
}

// Registry holds lakelink's metrics and the process's.
type Registry struct {
	reg *prometheus.Registry

	changes     *prometheus.CounterVec
	batches     *prometheus.CounterVec
	requests    *prometheus.CounterVec
	throttles   *prometheus.CounterVec
	unreachable *prometheus.CounterVec
	errors      *prometheus.CounterVec
	commit      *prometheus.HistogramVec

	mu sync.Mutex
	// totals counts each link's committed changes (ChangesApplied),
	// which the counters cannot be asked for without a gather.
	totals map[string]*atomic.Int64
}

// New returns a registry whose collector reads links() at each scrape.
func New(links func() []Link) *Registry {
	r := &Registry{
		reg:    prometheus.NewRegistry(),
		totals: map[string]*atomic.Int64{},
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_changes_applied_total", Help: "Changes (inserts, updates, deletes) committed to the lake, by table.",
		}, []string{"link", "table"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_batches_committed_total", Help: "Source batches committed to the lake (copy and stream).",
		}, []string{"link", "kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_source_requests_total", Help: "Calls of the source connector (tables, describe, copy, stream).",
		}, []string{"link", "call"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_source_throttles_total", Help: "Times the source asked lakelink to wait (HTTP 429), by table.",
		}, []string{"link", "table"}),
		unreachable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_source_unreachable_total", Help: "Reads of a table that failed and are retried (connection refused, 5xx).",
		}, []string{"link", "table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lakelink_errors_total", Help: "Failures: commits the lake refused, copies and streams that ended in an error.",
		}, []string{"link", "kind"}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lakelink_commit_seconds",
			Help:    "Time from a source batch handed to the engine until it is committed to the lake.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"link", "kind"}),
	}
	r.reg.MustRegister(r.changes, r.batches, r.requests, r.throttles, r.unreachable, r.errors, r.commit,
		&statusCollector{links: links},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return r
}

// Handler serves the metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Gatherer is the registry, for tests and other exporters.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// ChangesApplied returns the changes committed for a link since serve
// started.
func (r *Registry) ChangesApplied(linkName string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.totals[linkName]; n != nil {
		return n.Load()
	}
	return 0
}

// Forget drops a deleted link's series.
func (r *Registry) Forget(linkName string) {
	for _, v := range []*prometheus.CounterVec{r.changes, r.batches, r.requests, r.throttles, r.unreachable, r.errors} {
		v.DeletePartialMatch(prometheus.Labels{"link": linkName})
	}
	r.commit.DeletePartialMatch(prometheus.Labels{"link": linkName})
	r.mu.Lock()
	delete(r.totals, linkName)
	r.mu.Unlock()
}

// Instrument returns the decorators of one link (link.Options.Instrument).
func (r *Registry) Instrument(linkName string) link.Instrument {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := r.totals[linkName]
	if total == nil {
		total = &atomic.Int64{}
		r.totals[linkName] = total
	}
	return &instrument{r: r, link: linkName, total: total}
}

type instrument struct {
	r     *Registry
	link  string
	total *atomic.Int64
}

func (in *instrument) Events(e source.Events) source.Events {
	return &events{Events: e, in: in}
}

// Source wraps src; a source.Joiner stays one.
func (in *instrument) Source(src source.Source) source.Source {
	s := &measured{Source: src, in: in}
	if j, ok := src.(source.Joiner); ok {
		return &measuredJoiner{measured: s, j: j}
	}
	return s
}

// events counts the source's retries as they are reported.
type events struct {
	source.Events
	in *instrument
}

func (e *events) Throttled(table, reason string) {
	e.in.r.throttles.WithLabelValues(e.in.link, table).Inc()
	e.Events.Throttled(table, reason)
}

func (e *events) Unreachable(table, reason string) {
	e.in.r.unreachable.WithLabelValues(e.in.link, table).Inc()
	e.Events.Unreachable(table, reason)
}

// measured counts a source's calls and the batches it emits, timing each
// emit: emit returns once the batch is committed (source.Source's
// contract), so its duration is the commit's latency.
type measured struct {
	source.Source
	in *instrument
}

func (m *measured) call(name string) { m.in.r.requests.WithLabelValues(m.in.link, name).Inc() }

func (m *measured) Tables(ctx context.Context) ([]source.TableInfo, error) {
	m.call("tables")
	return m.Source.Tables(ctx)
}

func (m *measured) Copy(ctx context.Context, table, resume string, emit func(context.Context, source.Batch) error) error {
	m.call("copy")
	return m.failed("copy", m.Source.Copy(ctx, table, resume, m.emit("copy", emit)))
}

func (m *measured) Stream(ctx context.Context, cursors map[string]string, emit func(context.Context, source.Batch) error) error {
	m.call("stream")
	return m.failed("stream", m.Source.Stream(ctx, cursors, m.emit("stream", emit)))
}

// failed counts a copy's or stream's error (not its end by cancellation).
func (m *measured) failed(kind string, err error) error {
	if err != nil && !isCanceled(err) {
		m.in.r.errors.WithLabelValues(m.in.link, kind).Inc()
	}
	return err
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Unwrap returns the decorated source.
func (m *measured) Unwrap() source.Source { return m.Source }

// Health returns src, or the source it decorates, as a HealthReporter;
// nil when the connector reports no health.
func Health(src source.Source) source.HealthReporter {
	for src != nil {
		if h, ok := src.(source.HealthReporter); ok {
			return h
		}
		u, ok := src.(interface{ Unwrap() source.Source })
		if !ok {
			return nil
		}
		src = u.Unwrap()
	}
	return nil
}

func (m *measured) emit(kind string, emit func(context.Context, source.Batch) error) func(context.Context, source.Batch) error {
	return func(ctx context.Context, b source.Batch) error {
		start := time.Now()
		err := emit(ctx, b)
		if err != nil {
			if !isCanceled(err) {
				m.in.r.errors.WithLabelValues(m.in.link, "commit").Inc()
			}
			return err
		}
		m.in.r.commit.WithLabelValues(m.in.link, kind).Observe(time.Since(start).Seconds())
		m.in.r.batches.WithLabelValues(m.in.link, kind).Inc()
		per := map[string]int{}
		for _, c := range b.Changes {
			per[c.Table]++
		}
		for t, n := range per {
			m.in.r.changes.WithLabelValues(m.in.link, t).Add(float64(n))
		}
		m.in.total.Add(int64(len(b.Changes)))
		return nil
	}
}

// measuredJoiner is measured for a source whose stream takes joining
// tables: the engine finds StreamJoin by a type assertion.
type measuredJoiner struct {
	*measured
	j source.Joiner
}

func (m *measuredJoiner) StreamJoin(ctx context.Context, cursors map[string]string, join <-chan map[string]string, emit func(context.Context, source.Batch) error) error {
	m.call("stream")
	return m.failed("stream", m.j.StreamJoin(ctx, cursors, join, m.emit("stream", emit)))
}

// statusCollector reads every running link's status at scrape time.
type statusCollector struct {
	links func() []Link
}

var (
	descUp       = prometheus.NewDesc("lakelink_link_up", "1 while the link's engine runs, 0 while it is paused, retrying or invalid.", []string{"link"}, nil)
	descRows     = prometheus.NewDesc("lakelink_table_rows", "Rows of the table as committed (what select count(*) returns once compacted).", []string{"link", "table"}, nil)
	descLag      = prometheus.NewDesc("lakelink_table_lag_seconds", "Time since the table was last known to be current with the source.", []string{"link", "table"}, nil)
	descState    = prometheus.NewDesc("lakelink_table_state", "1 for the table's current state (as lakelink status names it).", []string{"link", "table", "state"}, nil)
	descRetained = prometheus.NewDesc("lakelink_slot_retained_bytes", "WAL the source's replication slot retains for the link.", []string{"link"}, nil)
)

// healthTimeout bounds the source health query of a scrape.
const healthTimeout = 2 * time.Second

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRows, descLag, descState, descRetained} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.links() {
		up := 0.0
		if l.Running {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, l.Name)
		if l.Engine != nil {
			for _, t := range l.Engine.Status() {
				ch <- prometheus.MustNewConstMetric(descRows, prometheus.GaugeValue, float64(t.Rows), l.Name, t.Name)
				if !t.LastSynchronized.IsZero() {
					ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, time.Duration(t.Lag).Seconds(), l.Name, t.Name)
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, l.Name, t.Name, string(t.State))
			}
		}
		if l.Health != nil {
			ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
			h, err := l.Health.Health(ctx)
			cancel()
			if err == nil {
				ch <- prometheus.MustNewConstMetric(descRetained, prometheus.GaugeValue, float64(h.Retained), l.Name)
			}
		}
	}
}
