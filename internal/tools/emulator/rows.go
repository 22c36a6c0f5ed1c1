package emulator

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// outAttrs returns the properties a row shows for sel, in table order; the
// primary id is always among them, as the Web API always returns the key.
func outAttrs(t *table, sel []*attribute) []*attribute {
	var out []*attribute
	for _, a := range t.Attrs {
		if a.AttributeOf != "" {
			continue
		}
		if sel == nil || a.Name == t.PrimaryID || contains(sel, a) {
			out = append(out, a)
		}
	}
	return out
}

func contains(list []*attribute, a *attribute) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// appendRow appends one entity as JSON. head, if not empty, is written
// first inside the object (an @odata.context member with its comma).
func appendRow(b []byte, head string, fields [][]byte, version uint64, out []*attribute, an annotate) []byte {
	b = append(b, '{')
	b = append(b, head...)
	b = append(b, `"@odata.etag":"W/\"`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `\""`...)
	for _, a := range out {
		if a.col < 0 {
			b = append(b, a.key...)
			b = strconv.AppendUint(b, version, 10)
			continue
		}
		f := fields[a.col]
		if f == nil {
			b = append(b, a.key...)
			b = append(b, "null"...)
			continue
		}
		if a.Kind.isLookup() {
			target, id := splitLookup(f)
			if an.navigation {
				nav := a.Name
				if len(a.Targets) > 1 {
					nav += "_" + target
				}
				b = append(b, a.key[:len(a.key)-2]...)
				b = append(b, `@Microsoft.Dynamics.CRM.associatednavigationproperty":"`...)
				b = append(b, nav...)
				b = append(b, '"')
			}
			if an.lookupName {
				b = append(b, a.key[:len(a.key)-2]...)
				b = append(b, `@Microsoft.Dynamics.CRM.lookuplogicalname":"`...)
				b = append(b, target...)
				b = append(b, '"')
			}
			b = append(b, a.key...)
			b = append(b, id...)
			continue
		}
		if an.formatted {
			if label, ok := formatted(a, f); ok {
				b = append(b, a.key[:len(a.key)-2]...)
				b = append(b, `@OData.Community.Display.V1.FormattedValue":`...)
				b = appendJSONString(b, label)
			}
		}
		b = append(b, a.key...)
		b = append(b, f...)
	}
	return append(b, '}')
}

// formatted returns the display label of a choice or boolean value; other
// types have no formatted value in the emulator.
func formatted(a *attribute, f []byte) (string, bool) {
	switch a.Kind {
	case kBoolean:
		if string(f) == "true" {
			return "Yes", true
		}
		return "No", true
	case kPicklist, kState, kStatus:
		n, err := strconv.Atoi(string(f))
		if err != nil {
			return "", false
		}
		return a.Options.label(n)
	}
	return "", false
}

func (e *Emulator) getOne(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID) error {
	e.stats.reads.Add(1)
	v := r.URL.Query()
	for name := range v {
		if name != "$select" {
			return errQuery("The query option '%s' is not supported by the lakelink emulator on a single record.", name)
		}
	}
	q := &query{}
	if s := v.Get("$select"); s != "" {
		sel, err := parseSelect(t, s)
		if err != nil {
			return err
		}
		q.selectRaw, q.sel = s, sel
	}
	p := parsePrefer(r.Header)
	var body []byte
	var version uint64
	err := e.view(r.Context(), func(tx *bolt.Tx) error {
		fields := make([][]byte, len(t.cols))
		var ok bool
		var err error
		if version, ok, err = e.get(tx, t, id[:], newGen(t, e.seed, e.layout), fields); err != nil || !ok {
			if err == nil {
				err = errNotFound(t.Name, id.String())
			}
			return err
		}
		head := `"@odata.context":` + string(appendJSONString(nil, e.base(r)+"/$metadata#"+selectContext(t, q)+"/$entity")) + ","
		body = appendRow(nil, head, fields, version, outAttrs(t, q.sel), p.annotate())
		return nil
	})
	if err != nil {
		return err
	}
	etag := `W/"` + strconv.FormatUint(version, 10) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if a := p.applied(false); a != "" {
		w.Header().Set("Preference-Applied", a)
	}
	e.stats.rows.Add(1)
	writeBody(w, http.StatusOK, body)
	return nil
}

// getCollection serves a collection read; with change tracking asked for
// or a delta token given, it is a change-tracking read (changes.go).
func (e *Emulator) getCollection(w http.ResponseWriter, r *http.Request, t *table) error {
	e.stats.reads.Add(1)
	v := r.URL.Query()
	p := parsePrefer(r.Header)
	if p.trackChanges || v.Has("$deltatoken") {
		return e.getChanges(w, r, t, v, p)
	}
	q, err := parseQuery(t, v)
	if err != nil {
		return err
	}
	skip := v.Get("$skiptoken")
	limit := p.pageSize()
	out, an := outAttrs(t, q.sel), p.annotate()
	rows := bytes.NewBuffer(make([]byte, 0, 64<<10))
	var n int
	var next string
	if q.order != nil {
		n, next, err = e.orderedPage(rows, t, q, skip, limit, out, an)
	} else {
		n, next, err = e.keyPage(rows, t, q, skip, limit, out, an)
	}
	if err != nil {
		return err
	}
	counts, err := e.countMembers(r.Context(), t, q, an)
	if err != nil {
		return err
	}
	buf := bytes.NewBuffer(make([]byte, 0, rows.Len()+1024))
	buf.WriteString(`{"@odata.context":`)
	buf.Write(appendJSONString(nil, e.base(r)+"/$metadata#"+selectContext(t, q)))
	buf.WriteString(counts)
	buf.WriteString(`,"value":[`)
	buf.Write(rows.Bytes())
	buf.WriteByte(']')
	if next != "" {
		count := ""
		if q.count {
			count = "true"
		}
		link := e.base(r) + "/" + t.SetName + "?" + linkQuery("$select", q.selectRaw, "$filter", q.filterRaw,
			"$orderby", q.orderby, "$count", count, "$skiptoken", next)
		buf.WriteString(`,"@odata.nextLink":`)
		buf.Write(appendJSONString(nil, link))
	}
	buf.WriteByte('}')
	if a := p.applied(false); a != "" {
		w.Header().Set("Preference-Applied", a)
	}
	e.stats.rows.Add(int64(n))
	writeBody(w, http.StatusOK, buf.Bytes())
	return nil
}

// keyPage writes one page of rows in key order to buf; it returns the
// number of rows and the skip token of the next page ("" on the last).
func (e *Emulator) keyPage(buf *bytes.Buffer, t *table, q *query, skip string, limit int, out []*attribute, an annotate) (int, string, error) {
	var after []byte
	remaining := q.top
	if skip != "" {
		var err error
		if after, remaining, err = parsePageToken(skip); err != nil {
			return 0, "", err
		}
	}
	last := false // the page ends the result ($top reached)
	if remaining > 0 && remaining <= limit {
		limit, last = remaining, true
	}
	var next []byte
	n := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		s := e.newScan(tx, t, after)
		var row []byte
		for {
			k, version, err := s.next()
			if err != nil || k == nil {
				return err
			}
			if n == limit {
				if !last {
					next = append([]byte(nil), after...)
				}
				return nil
			}
			after = append(after[:0], k...)
			if !q.matches(s.fields, version) {
				continue
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			row = appendRow(row[:0], "", s.fields, version, out, an)
			buf.Write(row)
			n++
		}
	})
	if err != nil || next == nil {
		return n, "", err
	}
	rem := 0
	if remaining > 0 {
		rem = remaining - n
	}
	return n, pageToken(next, rem), nil
}

// matches reports whether a row passes the query's $filter.
func (q *query) matches(fields [][]byte, version uint64) bool {
	return q.filter == nil || q.filter.eval(rowValue{fields, version}) == triTrue
}

// A page token of a plain read names the last key served and, under $top,
// how many rows remain.
func pageToken(after []byte, remaining int) string {
	return "p." + hex.EncodeToString(after) + "." + strconv.Itoa(remaining)
}

func parsePageToken(s string) ([]byte, int, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != "p" {
		return nil, 0, errQuery("The $skiptoken '%s' is not valid for this request; follow the @odata.nextLink as returned.", s)
	}
	after, err := hex.DecodeString(parts[1])
	rem, err2 := strconv.Atoi(parts[2])
	if err != nil || err2 != nil || len(after) != 16 {
		return nil, 0, errQuery("The $skiptoken '%s' is not valid for this request; follow the @odata.nextLink as returned.", s)
	}
	return after, rem, nil
}

// maxBody bounds a request body; Dataverse rows are far smaller.
const maxBody = 16 << 20

func readBody(r *http.Request) (map[string]json.RawMessage, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, codeInvalidArgument, "Could not read the request body: " + err.Error()}
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(data, &body); err != nil || body == nil {
		return nil, &apiError{http.StatusBadRequest, codeInvalidArgument,
			"The request body is not a JSON object of the entity's properties: " + fmt.Sprint(err)}
	}
	return body, nil
}

// applyBody applies a create or update body to fields within tx.
func (e *Emulator) applyBody(tx *bolt.Tx, t *table, fields [][]byte, body map[string]json.RawMessage, id uuid.UUID) error {
	stateSet, statusSet := false, false
	for k, raw := range body {
		if k == "@odata.type" || k == "@odata.etag" {
			continue
		}
		if nav, ok := strings.CutSuffix(k, "@odata.bind"); ok {
			np, ok := t.navs[nav]
			if !ok {
				return errQuery("An undeclared property '%s' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.", nav)
			}
			f, err := e.bindField(tx, np, raw)
			if err != nil {
				return err
			}
			fields[np.attr.col] = f
			continue
		}
		a, ok := t.byName[k]
		if !ok || a.AttributeOf != "" || a.Kind.isLookup() {
			return errQuery("The property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", k, t.entityType())
		}
		if a.ReadOnly {
			// Dataverse ignores values for system-set columns.
			continue
		}
		f, err := fieldFromJSON(t, a, raw)
		if err != nil {
			return err
		}
		if a.Name == t.PrimaryID {
			if f != nil && !bytes.Equal(f, guidField(id)) {
				return errQuery("The value of '%s' in the body does not match the record's key %s.", a.Name, id)
			}
			continue
		}
		if f == nil && a.Required {
			return &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("Attribute '%s' of '%s' cannot be set to NULL.", a.Name, t.Name)}
		}
		fields[a.col] = f
		stateSet = stateSet || a.Kind == kState
		statusSet = statusSet || a.Kind == kStatus
	}
	_, first := body["firstname"]
	_, last := body["lastname"]
	if full, ok := t.byName["fullname"]; ok && (first || last) {
		// Dataverse composes fullname from the name parts.
		var parts []string
		for _, name := range []string{"firstname", "lastname"} {
			var s string
			if f := fields[t.byName[name].col]; f != nil && json.Unmarshal(f, &s) == nil && s != "" {
				parts = append(parts, s)
			}
		}
		fields[full.col] = nil
		if len(parts) > 0 {
			fields[full.col] = appendJSONString(nil, strings.Join(parts, " "))
		}
	}
	if stateSet {
		state := t.byName["statecode"]
		status := t.byName["statuscode"]
		sv, _ := strconv.Atoi(string(fields[state.col]))
		if !statusSet {
			for _, o := range state.Options.Options {
				if o.Value == sv {
					fields[status.col] = []byte(strconv.Itoa(o.DefaultStatus))
				}
			}
		} else if fields[status.col] != nil {
			st, _ := strconv.Atoi(string(fields[status.col]))
			for _, o := range status.Options.Options {
				if o.Value == st && o.State != sv {
					return errRange(t, status, strconv.Itoa(st))
				}
			}
		}
	}
	return nil
}

// bindField resolves an @odata.bind value ("/accounts(<id>)", or a full
// URL ending so) to a stored lookup field; the record must exist.
func (e *Emulator) bindField(tx *bolt.Tx, np navProp, raw json.RawMessage) ([]byte, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var ref string
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, errType(np.attr, raw, "Edm.EntityReference")
	}
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	set, key, ok := splitKey(ref)
	target := e.byName[np.target]
	id, err := uuid.Parse(key)
	if !ok || err != nil || set != target.SetName {
		return nil, &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf(
			"The @odata.bind value '%s' of '%s' must reference a record of %s as '/%s(<guid>)'.", ref, np.attr.Name, target.SetName, target.SetName)}
	}
	if _, ok, err := e.get(tx, target, id[:], newGen(target, e.seed, e.layout), make([][]byte, len(target.cols))); err != nil || !ok {
		if err == nil {
			err = errNotFound(target.Name, id.String())
		}
		return nil, err
	}
	return lookupField(target.Name, id), nil
}

func (e *Emulator) nowField() []byte {
	return appendJSONString(nil, e.now().UTC().Truncate(time.Second).Format(dateTimeLayout))
}

// newRecordFields returns the fields of a record being created with the
// platform defaults: owner = the calling user, active state.
func (e *Emulator) newRecordFields(t *table, id uuid.UUID) [][]byte {
	fields := make([][]byte, len(t.cols))
	fields[t.byName[t.PrimaryID].col] = guidField(id)
	if a, ok := t.byName["ownerid"]; ok {
		fields[a.col] = lookupField("systemuser", e.callerID)
	}
	if a, ok := t.byName["statecode"]; ok {
		fields[a.col] = []byte("0")
		fields[t.byName["statuscode"].col] = []byte(strconv.Itoa(a.Options.Options[0].DefaultStatus))
	}
	for _, a := range t.cols {
		if a.Kind == kBoolean {
			fields[a.col] = []byte("false") // BooleanAttributeMetadata.DefaultValue
		}
	}
	if t.HasCreatedOn {
		now := e.nowField()
		fields[t.byName["createdon"].col] = now
		fields[t.byName["modifiedon"].col] = now
	}
	return fields
}

func checkRequired(t *table, fields [][]byte) error {
	for _, a := range t.cols {
		if a.Required && fields[a.col] == nil {
			return &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("Attribute '%s' of '%s' is required.", a.Name, t.Name)}
		}
	}
	return nil
}

func (e *Emulator) create(w http.ResponseWriter, r *http.Request, t *table) error {
	e.stats.writes.Add(1)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var id uuid.UUID
	var version uint64
	var fields [][]byte
	err = e.update(r.Context(), func(tx *bolt.Tx) error {
		if raw, ok := body[t.PrimaryID]; ok && string(raw) != "null" {
			f, err := fieldFromJSON(t, t.byName[t.PrimaryID], raw)
			if err != nil {
				return err
			}
			id = uuid.MustParse(strings.Trim(string(f), `"`))
			_, exists, err := e.get(tx, t, id[:], newGen(t, e.seed, e.layout), make([][]byte, len(t.cols)))
			if err != nil {
				return err
			}
			if exists {
				return &apiError{http.StatusPreconditionFailed, codeDuplicateRecord, "A record with matching key values already exists."}
			}
		} else {
			meta := tx.Bucket(metaBucket)
			next := getU64(meta, nextKey(t))
			id = seqID(e.layout[t.Name].Base, next)
			if err := meta.Put(nextKey(t), u64(next+1)); err != nil {
				return err
			}
		}
		fields = e.newRecordFields(t, id)
		if err := e.applyBody(tx, t, fields, body, id); err != nil {
			return err
		}
		if err := checkRequired(t, fields); err != nil {
			return err
		}
		var err error
		version, err = e.store(tx, t, id, fields)
		return err
	})
	if err != nil {
		return err
	}
	return e.answerWrite(w, r, t, id, fields, version, http.StatusCreated)
}

// store writes fields as id's new state at a new version.
func (e *Emulator) store(tx *bolt.Tx, t *table, id uuid.UUID, fields [][]byte) (uint64, error) {
	version, err := bumpVersion(tx)
	if err != nil {
		return 0, err
	}
	return version, putRecord(tx, t, id[:], version, encodeRecord(nil, version, fields))
}

func (e *Emulator) answerWrite(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID, fields [][]byte, version uint64, status int) error {
	p := parsePrefer(r.Header)
	entityID := e.base(r) + "/" + t.SetName + "(" + id.String() + ")"
	w.Header().Set("OData-EntityId", entityID)
	if !p.representation {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	q := &query{}
	if s := r.URL.Query().Get("$select"); s != "" {
		sel, err := parseSelect(t, s)
		if err != nil {
			return err
		}
		q.selectRaw, q.sel = s, sel
	}
	w.Header().Set("Preference-Applied", "return=representation")
	w.Header().Set("ETag", `W/"`+strconv.FormatUint(version, 10)+`"`)
	head := `"@odata.context":` + string(appendJSONString(nil, e.base(r)+"/$metadata#"+selectContext(t, q)+"/$entity")) + ","
	writeBody(w, status, appendRow(nil, head, fields, version, outAttrs(t, q.sel), p.annotate()))
	return nil
}

// patch updates id, or creates it (upsert) unless If-Match: * forbids it;
// If-None-Match: * makes it create-only.
func (e *Emulator) patch(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID) error {
	e.stats.writes.Add(1)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	fields, version, created, err := e.write(r.Context(), t, id, body, r.Header.Get("If-Match"), r.Header.Get("If-None-Match"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return e.answerWrite(w, r, t, id, fields, version, status)
}

// write applies body to id under the If-Match/If-None-Match rules of a
// PATCH and returns the row's new fields and version, and whether it was
// created.
func (e *Emulator) write(ctx context.Context, t *table, id uuid.UUID, body map[string]json.RawMessage, ifMatch, ifNoneMatch string) ([][]byte, uint64, bool, error) {
	var version uint64
	var fields [][]byte
	created := false
	err := e.update(ctx, func(tx *bolt.Tx) error {
		fields = make([][]byte, len(t.cols))
		old, exists, err := e.get(tx, t, id[:], newGen(t, e.seed, e.layout), fields)
		if err != nil {
			return err
		}
		switch {
		case !exists && ifMatch != "":
			return errNotFound(t.Name, id.String())
		case exists && ifNoneMatch == "*":
			return &apiError{http.StatusPreconditionFailed, codeDuplicateRecord, "A record with matching key values already exists."}
		case exists && ifMatch != "" && ifMatch != "*" && ifMatch != `W/"`+strconv.FormatUint(old, 10)+`"`:
			return &apiError{http.StatusPreconditionFailed, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided."}
		}
		if !exists {
			created = true
			fields = e.newRecordFields(t, id)
		} else {
			// Copy: the fields alias the page the update rewrites.
			for i, f := range fields {
				if f != nil {
					fields[i] = append([]byte(nil), f...)
				}
			}
			if t.HasCreatedOn {
				fields[t.byName["modifiedon"].col] = e.nowField()
			}
		}
		if err := e.applyBody(tx, t, fields, body, id); err != nil {
			return err
		}
		if err := checkRequired(t, fields); err != nil {
			return err
		}
		version, err = e.store(tx, t, id, fields)
		return err
	})
	return fields, version, created, err
}

func (e *Emulator) remove(w http.ResponseWriter, r *http.Request, t *table, id uuid.UUID) error {
	e.stats.writes.Add(1)
	err := e.update(r.Context(), func(tx *bolt.Tx) error {
		if err := e.deleteRecord(tx, t, id[:]); err != nil {
			if err == errNoRow {
				return errNotFound(t.Name, id.String())
			}
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
