package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/engine"
	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/link"
	"github.com/lakelink/lakelink/internal/sqldb"
)

// RunState is what a link's runner is doing. The tables have their own
// states (engine.State, as lakelink status names them); this one is the
// link's as a whole.
type RunState string

// Link run states.
const (
	// Starting: the link is being opened (source connected, lake opened).
	Starting RunState = "Starting"
	// Running: the link's engine runs; its tables say how far they are.
	Running RunState = "Running"
	// Retrying: opening or running the link failed (Error says why); it is
	// opened again after a back-off, at most maxBackoff apart.
	Retrying RunState = "Retrying"
	// Paused: stopped through the API until resumed; kept across restarts
	// of serve (a marker file beside the profile).
	Paused RunState = "Paused"
	// Invalid: the profile file in the links directory does not load;
	// Error has the same message lakelink sync prints.
	Invalid RunState = "Invalid"
)

// maxBackoff bounds the wait between two openings of a failing link.
const maxBackoff = 30 * time.Second

// runner runs one link in its own goroutine until stopped, opening it
// again after a failure: one link's failure never touches the others,
// each has its own engine, source and lake.
type runner struct {
	svc *Service
	// name and file do not change; the profile does (under mu).
	name string
	file string

	mu      sync.Mutex
	profile *config.Link
	state   RunState
	err     string
	since   time.Time
	started bool // the engine has been started at least once since (re)start
	l       *link.Link
	cancel  context.CancelFunc
	done    chan struct{}
	// reinit names the tables the next opening copies afresh.
	reinit []string
	// db is the link's lake database for SQL, opened on first use.
	db *sqldb.DB
}

func (r *runner) setState(s RunState, err string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != s {
		r.since = time.Now()
	}
	r.state, r.err = s, err
}

// start runs the link in the background; the caller holds no lock.
func (r *runner) start() {
	r.mu.Lock()
	if r.cancel != nil {
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(r.svc.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	r.started = false
	done := r.done
	r.mu.Unlock()
	go func() {
		defer close(done)
		r.loop(ctx)
	}()
}

// stop stops the link and waits until its engine committed what was in
// flight and released the lake, as lakelink sync does on SIGTERM.
func (r *runner) stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// loop opens and runs the link until ctx ends, with a back-off between
// failed attempts.
func (r *runner) loop(ctx context.Context) {
	log := r.svc.log.With("link", r.name)
	wait := time.Second
	for {
		r.setState(Starting, "")
		r.mu.Lock()
		p, reinit := r.profile, r.reinit
		r.mu.Unlock()
		l, err := link.Open(ctx, p, link.Options{Logger: log, Reinit: reinit, Instrument: r.svc.instrument(r.name)})
		if err == nil {
			r.mu.Lock()
			r.l, r.reinit, r.started = l, nil, true
			r.mu.Unlock()
			r.setState(Running, "")
			log.Info("link started", "lake", l.Store.Location(""), "tables", len(p.Tables))
			err = l.Run(ctx)
			cerr := l.Close()
			r.mu.Lock()
			r.l = nil
			r.mu.Unlock()
			if ctx.Err() != nil {
				if cerr != nil {
					log.Error("link stopped; closing it failed", "err", cerr)
				}
				log.Info("link stopped")
				return
			}
			if err == nil {
				err = errors.New("the link's engine stopped by itself")
			}
			wait = time.Second
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("link failed; opening it again", "err", err, "in", wait)
		r.setState(Retrying, err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// engine returns the running engine, nil when the link does not run.
func (r *runner) engine() *engine.Engine {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.l == nil {
		return nil
	}
	return r.l.Engine
}

// database returns the link's lake database, opening it on first use.
func (r *runner) database(ctx context.Context) (*sqldb.DB, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db != nil {
		return r.db, nil
	}
	st, err := link.OpenStore(ctx, r.profile)
	if err != nil {
		return nil, err
	}
	db, err := sqldb.Open(ctx, st, lake.NewReader(st).State)
	if err != nil {
		return nil, fmt.Errorf("link %s: open the lake database: %w", r.name, err)
	}
	r.db = db
	return db, nil
}

// closeDB closes the lake database, if open.
func (r *runner) closeDB() {
	r.mu.Lock()
	db := r.db
	r.db = nil
	r.mu.Unlock()
	if db != nil {
		if err := db.Close(); err != nil {
			r.svc.log.Warn("closing the lake database", "link", r.name, "err", err)
		}
	}
}

// pausedMarker is the file whose presence keeps a link paused across
// restarts of serve.
func pausedMarker(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".paused"
}

// profileFile is where the profile of link name lives.
func (s *Service) profileFile(name string) string {
	return filepath.Join(s.opts.LinksDir, name+".yaml")
}

// loadDir reads every profile of the links directory. A profile that does
// not load is kept as an Invalid link (its file's base name), so that the
// API shows it with the CLI's message; two files naming one link keep the
// first.
func (s *Service) loadDir() error {
	if err := os.MkdirAll(s.opts.LinksDir, 0o755); err != nil {
		return fmt.Errorf("links directory: %w", err)
	}
	ents, err := os.ReadDir(s.opts.LinksDir)
	if err != nil {
		return fmt.Errorf("links directory: %w", err)
	}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := filepath.Join(s.opts.LinksDir, e.Name())
		p, err := config.Load(file)
		if err != nil {
			name := strings.TrimSuffix(e.Name(), ext)
			s.links[name] = &runner{svc: s, name: name, file: file, state: Invalid, err: err.Error(), since: time.Now()}
			s.log.Error("link profile does not load; fix it and restart serve, or replace it through the API", "file", file, "err", err)
			continue
		}
		if other, ok := s.links[p.Name]; ok {
			s.log.Error("two profiles name the same link: the second is ignored", "link", p.Name, "kept", other.file, "ignored", file)
			continue
		}
		s.links[p.Name] = &runner{svc: s, name: p.Name, file: file, profile: p}
	}
	return nil
}

// startAll starts every valid link that is not paused.
func (s *Service) startAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.links {
		if r.state == Invalid {
			continue
		}
		if _, err := os.Stat(pausedMarker(r.file)); err == nil {
			r.setState(Paused, "")
			continue
		}
		r.start()
	}
}

// stopAll stops every link, in parallel: each commits what it has in
// flight.
func (s *Service) stopAll() {
	s.mu.Lock()
	rs := make([]*runner, 0, len(s.links))
	for _, r := range s.links {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			r.stop()
			r.closeDB()
		})
	}
	wg.Wait()
}

// runner returns the link named name.
func (s *Service) runner(name string) (*runner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.links[name]
	if !ok {
		return nil, problem(errUnknownLink, "no link is named %q: GET /api/v1/links lists them", name)
	}
	return r, nil
}

// sortedRunners returns the links by name.
func (s *Service) sortedRunners() []*runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*runner, 0, len(s.links))
	for _, r := range s.links {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// parseProfile validates a profile sent to the API (JSON, which is YAML)
// exactly as lakelink sync validates a file: the same messages, naming the
// field. file is where it will be written, which relative lake paths are
// resolved against. It returns the profile and its YAML text.
func parseProfile(file string, body []byte) (*config.Link, []byte, error) {
	text, err := yaml.JSONToYAML(body)
	if err != nil {
		return nil, nil, problem(errBadRequest, "the body is not a JSON object: %v", err)
	}
	p, err := config.Parse(file, text)
	if err != nil {
		return nil, nil, invalidProfile(err)
	}
	return p, text, nil
}

// writeProfile writes a profile's YAML atomically: a reader (a running
// link's watch, lakelink sync -c) sees the old file or the new one.
func writeProfile(file string, text []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		return fmt.Errorf("write profile %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write profile %s: %w", file, err)
	}
	return nil
}

// create adds a link from a validated profile, writes it and starts it.
func (s *Service) create(p *config.Link, text []byte) (*runner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.links[p.Name]; ok {
		return nil, problem(errDuplicateLink, "a link named %q exists already: choose another name, or PUT /api/v1/links/%s to change it", p.Name, p.Name)
	}
	file := s.profileFile(p.Name)
	if _, err := os.Stat(file); err == nil {
		return nil, problem(errDuplicateLink, "the profile file %s exists already (a link that does not load?): remove it first", file)
	}
	if err := s.lakeTaken(p, ""); err != nil {
		return nil, err
	}
	if err := writeProfile(file, text); err != nil {
		return nil, err
	}
	r := &runner{svc: s, name: p.Name, file: file, profile: p}
	s.links[p.Name] = r
	r.start()
	return r, nil
}

// lakeTaken refuses a profile whose lake another link of this service
// already writes: one writer per lake (the lease would refuse it later,
// but less clearly).
func (s *Service) lakeTaken(p *config.Link, self string) error {
	loc := p.LakeLocation()
	for name, r := range s.links {
		if name == self || r.profile == nil {
			continue
		}
		if r.profile.LakeLocation() == loc {
			return problem(errLakeTaken, "link %s writes the lake %s already: give link %s a lake of its own", name, loc, p.Name)
		}
	}
	return nil
}

// update replaces a link's profile. A change of the table list alone is
// applied to the running engine (tables added are copied, removed ones
// leave the lake), as lakelink sync does when its profile file is edited;
// any other change restarts the link, which commits what is in flight.
func (s *Service) update(r *runner, p *config.Link, text []byte) error {
	s.mu.Lock()
	if err := s.lakeTaken(p, r.name); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	if err := writeProfile(r.file, text); err != nil {
		return err
	}
	r.mu.Lock()
	old := r.profile
	r.profile = p
	wasInvalid := r.state == Invalid
	paused := r.state == Paused
	eng := (*engine.Engine)(nil)
	if r.l != nil {
		eng = r.l.Engine
	}
	r.mu.Unlock()
	switch {
	case wasInvalid:
		r.start()
	case paused:
	case eng != nil && sameButTables(old, p):
		eng.SetTables(link.Specs(p))
	default:
		r.stop()
		r.closeDB()
		r.start()
	}
	return nil
}

// sameButTables reports whether a and b differ in their table lists at
// most.
func sameButTables(a, b *config.Link) bool {
	x, y := *a, *b
	x.Tables, y.Tables = nil, nil
	return reflect.DeepEqual(x, y)
}

// remove stops a link, removes it from the service and its profile file,
// then unlinks it as lakelink unlink does (its state in the lake, the
// objects the source keeps for it, with deleteData the data too).
func (s *Service) remove(ctx context.Context, r *runner, deleteData bool) error {
	r.stop()
	r.closeDB()
	r.mu.Lock()
	p := r.profile
	r.mu.Unlock()
	if p != nil {
		if err := link.Unlink(ctx, p, deleteData); err != nil {
			// The link is stopped but still there: the caller may retry.
			return fmt.Errorf("unlink %s: %w", r.name, err)
		}
	}
	s.mu.Lock()
	delete(s.links, r.name)
	s.mu.Unlock()
	s.metrics.Forget(r.name)
	for _, f := range []string{r.file, pausedMarker(r.file)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return nil
}

// pause stops a link until resume; the marker file keeps it paused when
// serve restarts.
func (s *Service) pause(r *runner) error {
	if r.stateNow() == Invalid {
		return problem(errInvalidState, "link %s does not load (%s): fix its profile first", r.name, r.errNow())
	}
	if err := os.WriteFile(pausedMarker(r.file), []byte("paused through the API\n"), 0o644); err != nil {
		return fmt.Errorf("pause %s: %w", r.name, err)
	}
	r.stop()
	r.setState(Paused, "")
	return nil
}

// resume starts a paused link again.
func (s *Service) resume(r *runner) error {
	if r.stateNow() == Invalid {
		return problem(errInvalidState, "link %s does not load (%s): fix its profile first", r.name, r.errNow())
	}
	if err := os.Remove(pausedMarker(r.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resume %s: %w", r.name, err)
	}
	r.start()
	return nil
}

// reinit restarts the link with tables copied afresh (lakelink sync
// --reinit): readers see the old rows until the new copy replaces them.
func (s *Service) reinit(r *runner, table string) error {
	r.mu.Lock()
	p := r.profile
	r.mu.Unlock()
	if p == nil {
		return problem(errInvalidState, "link %s does not load (%s): fix its profile first", r.name, r.errNow())
	}
	found := false
	for _, t := range p.Tables {
		found = found || strings.EqualFold(t.Name, table)
	}
	if !found {
		return problem(errUnknownTable, "link %s has no table %q", r.name, table)
	}
	r.stop()
	r.mu.Lock()
	r.reinit = append(r.reinit, table)
	paused := r.state == Paused
	r.mu.Unlock()
	if !paused {
		r.start()
	}
	return nil
}

func (r *runner) stateNow() RunState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *runner) errNow() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ready reports whether the link's engine started (a paused link counts
// as ready: nobody wants it to run), or why not.
func (r *runner) ready() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.state == Paused:
		return true, ""
	case r.state == Invalid:
		return false, "profile does not load: " + r.err
	case r.started:
		return true, ""
	case r.err != "":
		return false, "not started: " + r.err
	}
	return false, "starting"
}

// discard is the logger of a Service without one.
var discard = slog.New(slog.DiscardHandler)
