package serve

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/engine"
)

// historyEvery is how often each link's lag and change rate are sampled;
// historyKeep how many samples are kept (the last hour).
const (
	historyEvery = 10 * time.Second
	historyKeep  = 360
)

// Sample is one point of a link's history.
type Sample struct {
	Time time.Time `json:"time"`
	// LagSeconds is the largest lag of the link's tables.
	LagSeconds float64 `json:"lag_seconds"`
	// ChangesPerSecond is the rate of changes committed since the
	// previous sample.
	ChangesPerSecond float64 `json:"changes_per_second"`
}

// History is GET /api/v1/links/{name}/history.
type History struct {
	Link         string   `json:"link"`
	EverySeconds float64  `json:"every_seconds"`
	Samples      []Sample `json:"samples"`
}

// history keeps the samples of every link in memory: charts of the last
// hour, not a time-series store (Prometheus is, through /metrics).
type history struct {
	mu    sync.Mutex
	links map[string]*linkHistory
}

type linkHistory struct {
	samples []Sample
	changes int64
}

func newHistory() *history { return &history{links: map[string]*linkHistory{}} }

// sample runs until ctx ends.
func (h *history) sample(ctx context.Context, s *Service) {
	tick := time.NewTicker(historyEvery)
	defer tick.Stop()
	for {
		h.take(s, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// take records one sample of every link and forgets deleted links.
func (h *history) take(s *Service, now time.Time) {
	live := map[string]bool{}
	for _, r := range s.sortedRunners() {
		live[r.name] = true
		var lag float64
		if e := r.engine(); e != nil {
			for _, t := range e.Status() {
				if t.State != engine.NotStarted && !t.LastSynchronized.IsZero() {
					lag = max(lag, time.Duration(t.Lag).Seconds())
				}
			}
		}
		changes := s.metrics.ChangesApplied(r.name)
		h.mu.Lock()
		lh := h.links[r.name]
		if lh == nil {
			lh = &linkHistory{changes: changes}
			h.links[r.name] = lh
		}
		rate := float64(changes-lh.changes) / historyEvery.Seconds()
		if n := len(lh.samples); n > 0 {
			rate = float64(changes-lh.changes) / now.Sub(lh.samples[n-1].Time).Seconds()
		}
		lh.changes = changes
		lh.samples = append(lh.samples, Sample{Time: now.UTC(), LagSeconds: lag, ChangesPerSecond: max(rate, 0)})
		if len(lh.samples) > historyKeep {
			lh.samples = lh.samples[len(lh.samples)-historyKeep:]
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	for name := range h.links {
		if !live[name] {
			delete(h.links, name)
		}
	}
	h.mu.Unlock()
}

func (s *Service) linkHistory(req *http.Request, _ none) (History, error) {
	r, err := s.runner(req.PathValue("name"))
	if err != nil {
		return History{}, err
	}
	out := History{Link: r.name, EverySeconds: historyEvery.Seconds(), Samples: []Sample{}}
	s.history.mu.Lock()
	if lh := s.history.links[r.name]; lh != nil {
		out.Samples = append(out.Samples, lh.samples...)
	}
	s.history.mu.Unlock()
	return out, nil
}
