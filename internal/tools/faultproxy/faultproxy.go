// Package faultproxy is an HTTP proxy for tests that stands in front of a
// real server (Azurite, an S3 server) and injects the faults of a network
// and a busy service: connections dropped before a request reaches the
// server, or after the server handled it and before the answer is back
// (the case that makes a retried conditional write find its own object),
// 503 answers, answers cut off mid-body, and delays.
//
// Faults are drawn from a seeded generator, so a run is repeatable for the
// same sequence of requests; Counts says what was injected.
package faultproxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Faults says which fraction of requests (0 to 1) gets each fault; the
// fractions add up to at most 1, and the rest pass untouched.
type Faults struct {
	// DropBefore closes the connection before the request reaches the
	// server.
	DropBefore float64
	// DropAfter has the server handle the request, then closes the
	// connection instead of answering.
	DropAfter float64
	// Unavailable answers 503 without reaching the server, with
	// UnavailableBody (an XML error naming ServerBusy when empty; an S3
	// test gives SlowDown's).
	Unavailable     float64
	UnavailableBody string
	// Truncate has the server answer, then sends its headers and half its
	// body and closes the connection.
	Truncate float64
	// Delay holds every request this long before it goes on.
	Delay time.Duration
	// Only, when set, picks the requests the fractions apply to; the
	// others pass untouched (Delay still applies).
	Only func(*http.Request) bool
}

// Counts counts the requests the proxy saw and the faults it injected.
type Counts struct {
	Requests, DroppedBefore, DroppedAfter, Unavailable, Truncated int
}

// Faulted is the number of requests that got a fault.
func (c Counts) Faulted() int { return c.DroppedBefore + c.DroppedAfter + c.Unavailable + c.Truncated }

// Proxy is a running proxy.
type Proxy struct {
	// URL is the proxy's base URL: the target's URL with the proxy's host.
	URL string

	target *url.URL
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	tr     *http.Transport

	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
	counts Counts
}

// Start starts a proxy to target (scheme://host[:port][/path]: the path is
// kept in URL, so an Azurite endpoint keeps its account) that injects no
// fault until Set; it stops when t ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("faultproxy: target %q is not a URL", target)
	}
	p := &Proxy{target: u, rng: rand.New(rand.NewPCG(1, 2)), tr: http.DefaultTransport.(*http.Transport).Clone()}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = u.Scheme, u.Host, u.Host
		},
		Transport: p.tr,
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	pu, _ := url.Parse(p.srv.URL)
	out := *u
	out.Host = pu.Host
	out.Scheme = pu.Scheme
	p.URL = out.String()
	return p
}

// Set replaces the faults; Set(Faults{}) stops injecting.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
}

// Counts returns what the proxy saw and injected so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

type fault int

const (
	none fault = iota
	dropBefore
	dropAfter
	unavailable
	truncate
)

// decide draws the fault of r and counts it.
func (p *Proxy) decide(r *http.Request) (fault, Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	p.counts.Requests++
	if f.Only != nil && !f.Only(r) {
		return none, f
	}
	x := p.rng.Float64()
	for _, c := range []struct {
		frac float64
		f    fault
		n    *int
	}{
		{f.DropBefore, dropBefore, &p.counts.DroppedBefore},
		{f.DropAfter, dropAfter, &p.counts.DroppedAfter},
		{f.Unavailable, unavailable, &p.counts.Unavailable},
		{f.Truncate, truncate, &p.counts.Truncated},
	} {
		if x < c.frac {
			*c.n++
			return c.f, f
		}
		x -= c.frac
	}
	return none, f
}

const busy = `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy (faultproxy).</Message></Error>`

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, f := p.decide(r)
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch kind {
	case none:
		p.rp.ServeHTTP(w, r)
	case dropBefore:
		hangUp(w)
	case unavailable:
		_, _ = io.Copy(io.Discard, r.Body)
		body := f.UnavailableBody
		if body == "" {
			body = busy
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, body)
	case dropAfter, truncate:
		resp, err := p.forward(r)
		if err != nil {
			hangUp(w)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if kind == dropAfter || len(body) < 2 {
			hangUp(w)
			return
		}
		c, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		_ = resp.Header.Write(buf)
		_, _ = buf.WriteString("\r\n")
		_, _ = buf.Write(body[:len(body)/2])
		_ = buf.Flush()
	}
}

// forward sends r to the target and returns its answer.
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = p.target.Scheme, p.target.Host, p.target.Host
	return p.tr.RoundTrip(out)
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	c.Close()
}
