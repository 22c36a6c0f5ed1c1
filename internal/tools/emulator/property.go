package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// txKey carries the write transaction of a $batch change set in a
// request's context: every write of the change set runs in it, so the
// change set commits or rolls back as one (batch.go).
type txKey struct{}

// update runs fn in the change set's transaction if ctx has one, else in
// a transaction of its own.
func (e *Emulator) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if tx, ok := ctx.Value(txKey{}).(*bolt.Tx); ok {
		return fn(tx)
	}
	return e.db.Update(fn)
}

// view is update for reads; inside a change set it reads the change set's
// own writes, as later requests of a change set see earlier ones.
func (e *Emulator) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if tx, ok := ctx.Value(txKey{}).(*bolt.Tx); ok {
		return fn(tx)
	}
	return e.db.View(fn)
}

// maxCount is the largest count Dataverse answers: $count and /$count
// count matching rows up to 5,000.
const maxCount = 5000

// countRows counts the rows of t that pass q's filter, stopping at limit.
func (e *Emulator) countRows(ctx context.Context, t *table, q *query, limit int) (int, error) {
	n := 0
	err := e.view(ctx, func(tx *bolt.Tx) error {
		s := e.newScan(tx, t, nil)
		for n < limit {
			k, version, err := s.next()
			if err != nil || k == nil {
				return err
			}
			if q.matches(s.fields, version) {
				n++
			}
		}
		return nil
	})
	return n, err
}

// countMembers returns the members a collection answer carries for
// $count=true and the total-record-count annotations ("" when neither is
// asked for), each with a leading comma.
func (e *Emulator) countMembers(ctx context.Context, t *table, q *query, an annotate) (string, error) {
	if !q.count && !an.totalCount {
		return "", nil
	}
	if !q.count {
		// Without $count=true the service does not count: -1.
		return `,"@Microsoft.Dynamics.CRM.totalrecordcount":-1,"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded":false`, nil
	}
	n, err := e.countRows(ctx, t, q, maxCount+1)
	if err != nil {
		return "", err
	}
	exceeded := n > maxCount
	n = min(n, maxCount)
	out := `,"@odata.count":` + strconv.Itoa(n)
	if an.totalCount {
		out += `,"@Microsoft.Dynamics.CRM.totalrecordcount":` + strconv.Itoa(n) +
			`,"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded":` + strconv.FormatBool(exceeded)
	}
	return out, nil
}

// getCount answers GET <set>/$count (optionally with $filter) as plain
// text, as the service does.
func (e *Emulator) getCount(w http.ResponseWriter, r *http.Request, t *table) error {
	e.stats.reads.Add(1)
	v := r.URL.Query()
	for name := range v {
		if name != "$filter" {
			return errQuery("The query option '%s' is not supported by the lakelink emulator on $count.", name)
		}
	}
	q := &query{}
	if f := v.Get("$filter"); f != "" {
		n, err := parseFilter(t, f)
		if err != nil {
			return err
		}
		q.filter = n
	}
	n, err := e.countRows(r.Context(), t, q, maxCount)
	if err != nil {
		return err
	}
	body := []byte(strconv.Itoa(n))
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// propertyRequest serves <set>(<id>)/<property>[/$value]: GET reads one
// value, PUT sets it from {"value": ...}, DELETE sets it to null.
func (e *Emulator) propertyRequest(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, rest string) error {
	prop, tail, _ := strings.Cut(rest, "/")
	a, ok := t.byProp[prop]
	if !ok {
		if np, nav := t.navs[prop]; nav && tail == "$ref" {
			return e.navRef(w, r, t, id, prop, np)
		}
		if _, nav := t.navs[prop]; nav {
			return errQuery("The lakelink emulator does not serve navigation property '%s' of %s; read the lookup property _%s_value.", prop, t.SetName, t.navs[prop].attr.Name)
		}
		return errSegment(prop)
	}
	raw := false
	switch {
	case tail == "$value" && r.Method == http.MethodGet:
		raw = true
	case tail != "":
		return errSegment(tail)
	}
	if len(r.URL.Query()) > 0 {
		return errQuery("The lakelink emulator supports no query options on a single property.")
	}
	switch r.Method {
	case http.MethodGet:
		return e.getProperty(w, r, t, id, a, raw)
	case http.MethodPut:
		body, err := readBody(r)
		if err != nil {
			return err
		}
		v, ok := body["value"]
		if !ok || len(body) != 1 {
			return &apiError{http.StatusBadRequest, codeInvalidArgument, `The body of a PUT to a single property must be {"value": <new value>}.`}
		}
		return e.setProperty(w, r, t, id, a, v)
	case http.MethodDelete:
		return e.setProperty(w, r, t, id, a, json.RawMessage("null"))
	}
	return errMethod(r.Method)
}

func (e *Emulator) getProperty(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, a *attribute, raw bool) error {
	e.stats.reads.Add(1)
	var f []byte
	err := e.view(r.Context(), func(tx *bolt.Tx) error {
		fields := make([][]byte, len(t.cols))
		version, ok, err := e.get(tx, t, id[:], newGen(t, e.seed, e.layout), fields)
		if err != nil || !ok {
			if err == nil {
				err = errNotFound(t.Name, id.String())
			}
			return err
		}
		f = bytes.Clone(rowValue{fields, version}.field(a))
		return nil
	})
	if err != nil {
		return err
	}
	if f == nil {
		// OData answers a null property with 204 No Content.
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	e.stats.rows.Add(1)
	if raw {
		text := string(f)
		var s string
		if json.Unmarshal(f, &s) == nil {
			text = s
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(text)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(text))
		return nil
	}
	ctx := e.base(r) + "/$metadata#" + t.SetName + "(" + id.String() + ")/" + a.property
	body := append([]byte(`{"@odata.context":`), appendJSONString(nil, ctx)...)
	body = append(body, `,"value":`...)
	body = append(append(body, f...), '}')
	writeBody(w, http.StatusOK, body)
	return nil
}

// setProperty updates one property of an existing record; it answers 204.
func (e *Emulator) setProperty(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, a *attribute, v json.RawMessage) error {
	e.stats.writes.Add(1)
	if a.Kind.isLookup() {
		return errQuery("The lookup property '%s' cannot be set on its own; PATCH the record with \"%s@odata.bind\".", a.property, a.Name)
	}
	if _, _, _, err := e.write(r.Context(), t, id, map[string]json.RawMessage{a.Name: v}, "*", ""); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// navRef serves <set>(<id>)/<nav>/$ref for a single-valued navigation
// property (a lookup): GET answers the referenced record's URL as
// {"@odata.context":".../$metadata#$ref","@odata.id":".../contacts(<id>)"}
// (204 when the lookup is empty or, for one target of a polymorphic
// lookup, refers to another table), PUT {"@odata.id":"<url>"} sets the
// lookup (associate) and DELETE empties it (disassociate), each exactly as
// a PATCH with "<nav>@odata.bind" would, answering 204.
func (e *Emulator) navRef(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, nav string, np navProp) error {
	if len(r.URL.Query()) > 0 {
		return errQuery("The lakelink emulator supports no query options on a $ref.")
	}
	switch r.Method {
	case http.MethodGet:
		e.stats.reads.Add(1)
		var f []byte
		err := e.view(r.Context(), func(tx *bolt.Tx) error {
			fields := make([][]byte, len(t.cols))
			_, ok, err := e.get(tx, t, id[:], newGen(t, e.seed, e.layout), fields)
			if err != nil || !ok {
				if err == nil {
					err = errNotFound(t.Name, id.String())
				}
				return err
			}
			f = bytes.Clone(fields[np.attr.col])
			return nil
		})
		if err != nil {
			return err
		}
		target, ref := splitLookup(f)
		var refID string
		if f == nil || target != np.target || json.Unmarshal(ref, &refID) != nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		body, err := json.Marshal(map[string]string{
			"@odata.context": e.base(r) + "/$metadata#$ref",
			"@odata.id":      e.base(r) + "/" + e.byName[target].SetName + "(" + refID + ")",
		})
		if err != nil {
			return err
		}
		e.stats.rows.Add(1)
		writeBody(w, http.StatusOK, body)
		return nil
	case http.MethodPut:
		body, err := readBody(r)
		if err != nil {
			return err
		}
		ref, ok := body["@odata.id"]
		if !ok || len(body) != 1 {
			return &apiError{http.StatusBadRequest, codeInvalidArgument, `The body of a PUT to a $ref must be {"@odata.id": "<URL of the record>"}.`}
		}
		return e.setNav(w, r, t, id, nav, ref)
	case http.MethodDelete:
		return e.setNav(w, r, t, id, nav, json.RawMessage("null"))
	}
	return errMethod(r.Method)
}

func (e *Emulator) setNav(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, nav string, ref json.RawMessage) error {
	e.stats.writes.Add(1)
	if _, _, _, err := e.write(r.Context(), t, id, map[string]json.RawMessage{nav + "@odata.bind": ref}, "*", ""); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
