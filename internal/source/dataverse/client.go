package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"

	"github.com/lakelink/lakelink/internal/source"
)

// apiPath is the Web API root under the environment URL.
const apiPath = "/api/data/v9.2/"

// HTTPError is a non-retryable answer of the Web API (400, 401, 403, 404
// and the like). Callers inspect Status; Code and Message come from the
// OData error body when there is one.
type HTTPError struct {
	Table   string // empty for requests that concern no single table
	URL     string // the request URL, without credentials (the API never puts them there)
	Status  int
	Code    string
	Message string
}

// subject names what a request was for in its errors: a table, or (for
// requests of no one table, such as the list of tables) the environment.
func subject(table string) string {
	if table == "" {
		return "dataverse request"
	}
	return "dataverse table " + table
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s: GET %s: HTTP %d", subject(e.Table), e.URL, e.Status)
	if e.Code != "" || e.Message != "" {
		msg += fmt.Sprintf(" (%s %s)", e.Code, e.Message)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += "; the credentials were refused: check tenant_id, client_id and the secret or certificate, and that the token audience is the environment URL"
	case http.StatusForbidden:
		msg += "; the application user lacks privileges: give its security role read access to this table in the Power Platform admin center"
	case http.StatusNotFound:
		msg += "; the table or entity set does not exist in this environment: check the table's logical name"
	}
	return msg
}

// client sends GET requests to the Web API on behalf of every table of a
// Source. Invariant: every attempt, retries included, first takes a token
// from limiter, so the whole link stays inside one request budget.
type client struct {
	base    string // environment URL without trailing slash
	http    *http.Client
	auth    authorizer
	limiter *rate.Limiter
	events  source.Events
	log     *slog.Logger
	// backoff makes the capped exponential backoff of one retry loop;
	// tests shorten it.
	backoff func() backoff.BackOff
}

// authorizer yields the Authorization header value of a request, or "" for
// none.
type authorizer interface {
	header(ctx context.Context) (string, error)
}

// defaultBackoff is the wait between attempts that got no Retry-After (a
// refused or broken connection, 5xx). The cap is short so that a link
// notices within seconds that an environment is back (a 30 s cap took
// 20 s or more after a one-minute outage); the load while it is down
// stays bounded by the link's request budget, which retries take from.
func defaultBackoff() backoff.BackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         5 * time.Second,
	}
}

// AuthError reports that no token could be had from Entra ID. Get retries
// it for up to authRetryTime (Entra ID or the network may be down for a
// moment), New not at all (the credentials are likely wrong).
type AuthError struct{ Err error }

func (e *AuthError) Error() string {
	return e.Err.Error() + "; check source.auth (tenant_id, client_id, the secret or certificate) and that the app registration is not disabled"
}

func (e *AuthError) Unwrap() error { return e.Err }

// authRetryTime bounds how long get keeps retrying a failing sign-in.
const authRetryTime = 2 * time.Minute

// retryable marks an attempt that failed in a way worth repeating (429, 5xx,
// a broken connection).
type retryable struct {
	status int // 0 for a transport error
	err    error
}

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// get fetches url for table and hands the successful response body to read.
// It retries 429, 5xx and transport errors until ctx ends, honouring
// Retry-After, and reports throttling through Events. A page is read whole
// inside one attempt, so a connection dropped mid-page repeats the page
// rather than losing or duplicating rows.
func (c *client) get(ctx context.Context, table, url string, prefer string, read func(io.Reader) error) error {
	waiting := notWaiting
	var authFailing time.Time
	op := func() (struct{}, error) {
		err := c.attempt(ctx, table, url, prefer, read)
		var ae *AuthError
		if errors.As(err, &ae) {
			if authFailing.IsZero() {
				authFailing = time.Now()
			}
			if time.Since(authFailing) > authRetryTime {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, err
		}
		authFailing = time.Time{}
		var r *retryable
		if err == nil || !errors.As(err, &r) {
			if err != nil {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, nil
		}
		// 429 is the service asking to wait; anything else retried
		// (a refused or broken connection, 5xx) is the service being
		// unreachable, which the status tells apart (#15 case 12).
		kind := unreachable
		if r.status == http.StatusTooManyRequests {
			kind = throttledKind
		}
		if kind != waiting && c.events != nil && table != "" {
			if kind == throttledKind {
				c.events.Throttled(table, r.Error())
			} else {
				c.events.Unreachable(table, r.Error())
			}
		}
		waiting = kind
		return struct{}{}, err
	}
	notify := func(err error, wait time.Duration) {
		c.log.Warn("dataverse request failed; retrying", "table", table, "url", url, "wait", wait, "err", err)
	}
	_, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(c.backoff()),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(notify))
	if waiting != notWaiting && c.events != nil && table != "" {
		c.events.Unthrottled(table)
	}
	return err
}

// waitKind is what a retry loop last reported through Events.
type waitKind int

const (
	notWaiting waitKind = iota
	throttledKind
	unreachable
)

// attempt makes one request. It returns a *retryable error (possibly
// joined with a *backoff.RetryAfterError) for failures worth repeating.
func (c *client) attempt(ctx context.Context, table, url, prefer string, read func(io.Reader) error) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: bad URL %s: %w", subject(table), url, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("OData-MaxVersion", "4.0")
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	h, err := c.auth.header(ctx)
	if err != nil {
		return &AuthError{Err: err}
	}
	if h != "" {
		req.Header.Set("Authorization", h)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &retryable{err: fmt.Errorf("%s: GET %s: %w", subject(table), url, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		body := &watchedReader{r: resp.Body}
		if err := read(body); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if body.err != nil {
				// The body was cut short (connection lost mid-page): a
				// transport failure, so read the page again.
				return &retryable{err: fmt.Errorf("%s: reading %s: %w", subject(table), url, body.err)}
			}
			return err
		}
		return nil
	}
	herr := errorFromResponse(table, url, resp)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		r := &retryable{status: resp.StatusCode, err: herr}
		if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			return errors.Join(r, &backoff.RetryAfterError{Duration: d})
		}
		return r
	case isExpired(herr):
		return fmt.Errorf("%w: %w", &source.CursorExpiredError{Table: table, Reason: strings.TrimSpace(herr.Code + " " + herr.Message)}, herr)
	default:
		return herr
	}
}

// watchedReader remembers the first read error other than io.EOF, which
// tells a broken connection from a malformed body.
type watchedReader struct {
	r   io.Reader
	err error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

// errorFromResponse reads the OData error body of a failed response.
func errorFromResponse(table, url string, resp *http.Response) *HTTPError {
	e := &HTTPError{Table: table, URL: url, Status: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &body) == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else if len(raw) > 0 {
		e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	}
	return e
}

// expiredCodes are the error codes Dataverse answers for a change-tracking
// token it no longer keeps (ExpireChangeTrackingInDays, 30 days by default).
var expiredCodes = map[string]bool{
	"0x80044352": true, // version stamp associated with the client has expired
	"0x80048529": true,
}

// isExpired tells whether a non-retryable answer rejects a delta or paging
// token as expired. The check is lenient on purpose: the alternative to a
// re-initialisation is a table stuck in Failed.
func isExpired(e *HTTPError) bool {
	if e.Status == http.StatusGone {
		return true
	}
	if e.Status != http.StatusBadRequest && e.Status != http.StatusUnprocessableEntity {
		return false
	}
	if expiredCodes[strings.ToLower(e.Code)] {
		return true
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "expired") && (strings.Contains(m, "token") || strings.Contains(m, "version") || strings.Contains(m, "sync"))
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
