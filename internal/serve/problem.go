package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/lakelink/lakelink/internal/config"
)

// Problem is an API error as RFC 9457 has it (application/problem+json).
// Type is stable: clients switch on it, never on Detail's wording.
type Problem struct {
	// Type identifies the kind of problem (urn:lakelink:problem:<kind>).
	Type string `json:"type"`
	// Title is the kind's short, fixed summary.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail says what happened in this case and what to do.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// Errors lists the fields of an invalid profile, each with the
	// message lakelink sync prints for it.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a profile.
type FieldError struct {
	Field   string `json:"field"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return p.Detail }

// problemKind is one stable problem type.
type problemKind struct {
	slug   string
	title  string
	status int
}

// The problem kinds the API answers with; docs/serve.md lists them.
var (
	errBadRequest     = problemKind{"bad-request", "The request is malformed", http.StatusBadRequest}
	errInvalidProfile = problemKind{"invalid-profile", "The link profile is invalid", http.StatusUnprocessableEntity}
	errUnknownLink    = problemKind{"unknown-link", "No such link", http.StatusNotFound}
	errUnknownTable   = problemKind{"unknown-table", "No such table", http.StatusNotFound}
	errNotFound       = problemKind{"not-found", "No such resource", http.StatusNotFound}
	errDuplicateLink  = problemKind{"duplicate-link", "The link exists already", http.StatusConflict}
	errLakeTaken      = problemKind{"lake-taken", "Another link writes that lake", http.StatusConflict}
	errInvalidState   = problemKind{"invalid-state", "The link cannot do that now", http.StatusConflict}
	errNameMismatch   = problemKind{"name-mismatch", "The profile's name is not the link's", http.StatusUnprocessableEntity}
	errTooLarge       = problemKind{"body-too-large", "The request body is too large", http.StatusRequestEntityTooLarge}
	errUnreachable    = problemKind{"source-unreachable", "The source cannot be reached", http.StatusBadGateway}
	errSQLNotAllowed  = problemKind{"sql-not-allowed", "The lake database is read-only", http.StatusUnprocessableEntity}
	errSQLFailed      = problemKind{"sql-failed", "The query failed", http.StatusUnprocessableEntity}
	errSQLTimeout     = problemKind{"sql-timeout", "The query ran out of time", http.StatusGatewayTimeout}
	errUnauthorized   = problemKind{"unauthorized", "A valid bearer token is needed", http.StatusUnauthorized}
	errForbidden      = problemKind{"forbidden", "The token's role does not allow this", http.StatusForbidden}
	errMethod         = problemKind{"method-not-allowed", "The method is not allowed here", http.StatusMethodNotAllowed}
	errInternal       = problemKind{"internal", "The service failed", http.StatusInternalServerError}
)

// problemKinds lists every kind, for the OpenAPI document.
var problemKinds = []problemKind{errBadRequest, errInvalidProfile, errUnknownLink, errUnknownTable, errNotFound,
	errDuplicateLink, errLakeTaken, errInvalidState, errNameMismatch, errTooLarge, errUnreachable, errSQLNotAllowed,
	errSQLFailed, errSQLTimeout, errUnauthorized, errForbidden, errMethod, errInternal}

const problemPrefix = "urn:lakelink:problem:"

// problem returns a Problem of kind k.
func problem(k problemKind, format string, args ...any) *Problem {
	return &Problem{Type: problemPrefix + k.slug, Title: k.title, Status: k.status, Detail: fmt.Sprintf(format, args...)}
}

// invalidProfile turns config.Parse's error into a Problem listing each
// field with the CLI's message.
func invalidProfile(err error) *Problem {
	p := problem(errInvalidProfile, "%v", err)
	var walk func(error)
	walk = func(e error) {
		var ce *config.Error
		if errors.As(e, &ce) && ce == e {
			p.Errors = append(p.Errors, FieldError{Field: ce.Field, Line: ce.Line, Message: ce.Msg})
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return p
}

// writeProblem answers with p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	q := *p
	q.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(q.Status)
	_ = json.NewEncoder(w).Encode(&q)
}

// asProblem maps a handler's error to the Problem it answers with.
func asProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return problem(errTooLarge, "the body is over %d bytes", mb.Limit)
	}
	return problem(errInternal, "%v", err)
}
