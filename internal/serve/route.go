package serve

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxBody bounds a request body: a profile, a table, a query. Larger
// bodies are refused (body-too-large) before they are parsed.
const maxBody = 1 << 20

// none is the In of a route without a body.
type none struct{}

// route is one API operation. The same value registers the handler on the
// ServeMux and describes the operation in the OpenAPI document, so the
// document cannot drift from what the handlers decode and encode.
type route struct {
	method  string
	path    string // ServeMux pattern path, with {wildcards}
	summary string
	role    Role
	status  int          // success status
	in, out reflect.Type // nil: no body
	query   []queryParam
	// contentType of a response that is not JSON (the OpenAPI document
	// itself is JSON; metrics are text).
	contentType string
	handler     http.HandlerFunc
}

// queryParam documents a query parameter.
type queryParam struct {
	name, typ, doc string
}

// rawBody is implemented by the In types that take the body's bytes as
// they are (profiles, parsed as YAML like the CLI's files), and say which
// Go type describes them in the OpenAPI document.
type rawBody interface {
	setRaw([]byte)
	schemaType() reflect.Type
}

// jsonRoute builds a route whose handler decodes In from the body (unless
// In is none), calls fn and encodes its Out as JSON with status.
func jsonRoute[In, Out any](method, path, summary string, role Role, status int, fn func(*http.Request, In) (Out, error)) route {
	rt := route{method: method, path: path, summary: summary, role: role, status: status, out: reflect.TypeFor[Out]()}
	if t := reflect.TypeFor[In](); t != reflect.TypeFor[none]() {
		rt.in = t
	}
	hasBody := rt.in != nil
	rt.handler = func(w http.ResponseWriter, r *http.Request) {
		var in In
		if hasBody {
			if err := decodeBody(w, r, &in); err != nil {
				writeProblem(w, r, asProblem(err))
				return
			}
		}
		out, err := fn(r, in)
		if err != nil {
			writeProblem(w, r, asProblem(err))
			return
		}
		writeJSON(w, status, out)
	}
	return rt
}

// withQuery documents the route's query parameters.
func (rt route) withQuery(q ...queryParam) route {
	rt.query = q
	return rt
}

// decodeBody reads at most maxBody bytes into v: raw for a rawBody, JSON
// with no unknown fields otherwise.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	if rb, ok := v.(rawBody); ok {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			return problem(errBadRequest, "the request has no body: send a JSON object")
		}
		rb.setRaw(b)
		return nil
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return problem(errBadRequest, "the request has no body: send a JSON object")
		}
		return problem(errBadRequest, "the body is not the JSON object this operation takes: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
