package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// POST $batch: an OData 4.0 multipart/mixed batch, as Dataverse serves it.
// Each part is an application/http request, run in order through the same
// handlers as a direct request; a multipart/mixed part is a change set,
// whose requests all run in one bbolt write transaction, so a change set
// commits or rolls back as a whole. Inside a change set "$<Content-ID>"
// stands for the entity an earlier request of the set created, at the
// start of a request URL ("PATCH $1") or as an @odata.bind value.
//
// As in Dataverse, the first failing request ends the batch: the answer
// holds the responses so far and the failure, with the failure's status;
// with Prefer: odata.continue-on-error every request runs and the batch
// answers 200. A failed change set answers its failure alone, not wrapped
// in a change set response.

// maxBatchRequests is the most requests a Dataverse batch may hold.
const maxBatchRequests = 1000

// innerRequest is one request of a batch.
type innerRequest struct {
	contentID string
	method    string
	target    string
	header    http.Header
	body      []byte
}

// partResponse is the recorded answer to one request of a batch; it is
// also the http.ResponseWriter the request's handler writes to.
type partResponse struct {
	contentID string
	status    int
	header    http.Header
	body      bytes.Buffer
}

func (p *partResponse) Header() http.Header { return p.header }

func (p *partResponse) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *partResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.body.Write(b)
}

// batchItem is one part of the answer: a response, or a change set's.
type batchItem struct {
	single    *partResponse
	changeSet []*partResponse
}

func errBatchFormat(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf(format, args...)}
}

func (e *Emulator) batch(w http.ResponseWriter, r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return errBatchFormat("A $batch request must have Content-Type multipart/mixed with a boundary; got '%s'.", r.Header.Get("Content-Type"))
	}
	continueOnError := parsePrefer(r.Header).continueOnError
	mr := multipart.NewReader(io.LimitReader(r.Body, maxBody), params["boundary"])
	var items []batchItem
	count, failed := 0, 0
	for failed == 0 || continueOnError {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errBatchFormat("The $batch body is not a valid multipart/mixed body: %v.", err)
		}
		pt, pp, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch pt {
		case "application/http":
			in, err := readInnerRequest(part, part.Header.Get("Content-ID"))
			if err != nil {
				return err
			}
			if count++; count > maxBatchRequests {
				return errBatchFormat("A $batch request can hold at most %d requests.", maxBatchRequests)
			}
			resp := e.runInner(r, r.Context(), in, nil)
			items = append(items, batchItem{single: resp})
			if resp.status >= 400 && failed == 0 {
				failed = resp.status
			}
		case "multipart/mixed":
			reqs, err := readChangeSet(part, pp["boundary"])
			if err != nil {
				return err
			}
			if count += len(reqs); count > maxBatchRequests {
				return errBatchFormat("A $batch request can hold at most %d requests.", maxBatchRequests)
			}
			resps, failure := e.runChangeSet(r, reqs)
			if failure != nil {
				items = append(items, batchItem{single: failure})
				if failed == 0 {
					failed = failure.status
				}
				continue
			}
			items = append(items, batchItem{changeSet: resps})
		default:
			return errBatchFormat("A $batch part must be application/http or a multipart/mixed change set; got '%s'.", part.Header.Get("Content-Type"))
		}
	}
	status := http.StatusOK
	if failed != 0 && !continueOnError {
		status = failed
	}
	boundary := "batchresponse_" + uuid.NewString()
	var b bytes.Buffer
	for _, it := range items {
		b.WriteString("--" + boundary + "\r\n")
		if it.single != nil {
			writePart(&b, it.single)
			continue
		}
		cs := "changesetresponse_" + uuid.NewString()
		b.WriteString("Content-Type: multipart/mixed; boundary=" + cs + "\r\n\r\n")
		for _, resp := range it.changeSet {
			b.WriteString("--" + cs + "\r\n")
			writePart(&b, resp)
		}
		b.WriteString("--" + cs + "--\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+boundary)
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}

// readChangeSet reads the requests of a change set part.
func readChangeSet(part io.Reader, boundary string) ([]*innerRequest, error) {
	if boundary == "" {
		return nil, errBatchFormat("A change set part must have Content-Type multipart/mixed with a boundary.")
	}
	mr := multipart.NewReader(part, boundary)
	var reqs []*innerRequest
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return reqs, nil
		}
		if err != nil {
			return nil, errBatchFormat("A change set is not a valid multipart/mixed body: %v.", err)
		}
		if pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt != "application/http" {
			return nil, errBatchFormat("A change set part must be application/http; got '%s'.", p.Header.Get("Content-Type"))
		}
		in, err := readInnerRequest(p, p.Header.Get("Content-ID"))
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, in)
	}
}

// readInnerRequest parses "METHOD target HTTP/1.1", headers, a blank line
// and the body. The target may be "$1/..." inside a change set, which
// net/http's request parser refuses, hence this small reader.
func readInnerRequest(part io.Reader, contentID string) (*innerRequest, error) {
	data, err := io.ReadAll(part)
	if err != nil {
		return nil, errBatchFormat("Could not read a $batch part: %v.", err)
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	line := ""
	for line == "" {
		if line, err = tp.ReadLine(); err != nil {
			return nil, errBatchFormat("A $batch part holds no request line.")
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 || len(f) > 3 || (len(f) == 3 && !strings.HasPrefix(f[2], "HTTP/")) {
		return nil, errBatchFormat("The request line '%s' of a $batch part is not 'METHOD URL HTTP/1.1'.", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && err != io.EOF {
		return nil, errBatchFormat("The headers of the $batch request '%s' are malformed: %v.", line, err)
	}
	body, _ := io.ReadAll(tp.R)
	if contentID == "" {
		contentID = hdr.Get("Content-ID")
	}
	return &innerRequest{contentID: contentID, method: f[0], target: f[1], header: http.Header(hdr), body: body}, nil
}

var errRolledBack = errors.New("change set rolled back")

// runChangeSet runs reqs in one write transaction; it returns their
// responses, or the failure that rolled the change set back.
func (e *Emulator) runChangeSet(outer *http.Request, reqs []*innerRequest) ([]*partResponse, *partResponse) {
	var resps []*partResponse
	var failure *partResponse
	err := e.db.Update(func(tx *bolt.Tx) error {
		ctx := context.WithValue(outer.Context(), txKey{}, tx)
		refs := map[string]string{}
		for _, in := range reqs {
			if in.method == http.MethodGet {
				failure = errorPart(in.contentID, errQuery("GET requests are not allowed in a change set; put them in the batch outside it."))
				return errRolledBack
			}
			resp := e.runInner(outer, ctx, in, refs)
			if resp.status >= 400 {
				failure = resp
				return errRolledBack
			}
			if loc := resp.header.Get("OData-EntityId"); in.contentID != "" && loc != "" {
				refs["$"+in.contentID] = loc
			}
			resps = append(resps, resp)
		}
		return nil
	})
	if err != nil && failure == nil {
		failure = errorPart("", err)
	}
	if failure != nil {
		return nil, failure
	}
	return resps, nil
}

func errorPart(contentID string, err error) *partResponse {
	p := &partResponse{contentID: contentID, header: http.Header{}}
	writeError(p, err)
	return p
}

// runInner runs one request of a batch through the API's router; refs are
// the Content-ID references of the change set it is in (nil outside one).
func (e *Emulator) runInner(outer *http.Request, ctx context.Context, in *innerRequest, refs map[string]string) *partResponse {
	if in.target == "$batch" || strings.HasSuffix(strings.SplitN(in.target, "?", 2)[0], "/$batch") {
		return errorPart(in.contentID, errBatchFormat("A $batch request can't contain another batch request."))
	}
	target, body, err := resolveRefs(in, refs)
	if err != nil {
		return errorPart(in.contentID, err)
	}
	u, err := url.Parse(target)
	if err != nil {
		return errorPart(in.contentID, errBatchFormat("The URL '%s' of a $batch request is not valid.", in.target))
	}
	path := u.EscapedPath()
	if !u.IsAbs() && !strings.HasPrefix(path, "/") {
		path = apiPrefix + path
	}
	if !strings.HasPrefix(path, apiPrefix) {
		return errorPart(in.contentID, errSegment(strings.TrimPrefix(path, "/")))
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, in.method, "http://"+outer.Host+path, bytes.NewReader(body))
	if err != nil {
		return errorPart(in.contentID, errBatchFormat("The $batch request '%s %s' is not valid: %v.", in.method, in.target, err))
	}
	req.Host, req.TLS = outer.Host, outer.TLS
	req.Header = in.header.Clone()
	resp := &partResponse{contentID: in.contentID, header: http.Header{}}
	resp.header.Set("OData-Version", "4.0")
	if err := e.route(resp, req); err != nil {
		writeError(resp, err)
	}
	resp.WriteHeader(http.StatusOK)
	return resp
}

// resolveRefs replaces "$<Content-ID>" at the start of the target and in
// @odata.bind values (and the @odata.id of a $ref body) by the entity
// URLs they stand for.
func resolveRefs(in *innerRequest, refs map[string]string) (string, []byte, error) {
	lookup := func(ref string) (string, error) {
		loc, ok := refs[ref]
		if !ok {
			return "", errQuery("Content-ID Reference: '%s' does not exist in the batch context.", ref)
		}
		return loc, nil
	}
	target := in.target
	if strings.HasPrefix(target, "$") {
		ref, rest, _ := strings.Cut(target, "/")
		loc, err := lookup(ref)
		if err != nil {
			return "", nil, err
		}
		target = loc
		if rest != "" {
			target += "/" + rest
		}
	}
	body := in.body
	if refs == nil || !bytes.Contains(body, []byte(`"$`)) {
		return target, body, nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return target, body, nil
	}
	for k, raw := range obj {
		var s string
		if !(strings.HasSuffix(k, "@odata.bind") || k == "@odata.id") || json.Unmarshal(raw, &s) != nil || !strings.HasPrefix(s, "$") {
			continue
		}
		loc, err := lookup(s)
		if err != nil {
			return "", nil, err
		}
		obj[k] = appendJSONString(nil, loc)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return "", nil, err
	}
	return target, b, nil
}

// headerSpelling undoes Go's canonical header case for the headers the
// service spells otherwise, so batch parts read as the service's do.
var headerSpelling = map[string]string{"Odata-Version": "OData-Version", "Odata-Entityid": "OData-EntityId", "Etag": "ETag"}

// writePart writes one response of a batch as an application/http part.
func writePart(b *bytes.Buffer, p *partResponse) {
	b.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	if p.contentID != "" {
		b.WriteString("Content-ID: " + p.contentID + "\r\n")
	}
	fmt.Fprintf(b, "\r\nHTTP/1.1 %d %s\r\n", p.status, http.StatusText(p.status))
	names := make([]string, 0, len(p.header))
	for k := range p.header {
		if k != "Content-Length" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		name := k
		if n, ok := headerSpelling[k]; ok {
			name = n
		}
		for _, v := range p.header[k] {
			b.WriteString(name + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	b.Write(p.body.Bytes())
	b.WriteString("\r\n")
}
