package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Change tracking.
//
// A first read (Prefer: odata.track-changes, no token) captures the
// environment version V at its first page and pages through the table by
// id, serving each row's current state; its last page carries a delta link
// whose token is V. A delta read of token V captures the current version U
// at its first page and serves, in version order, the latest change of
// every id whose version is in (V, U]: the row's current state, or a
// $deletedEntity for a deleted id; its last page carries a delta link with
// token U.
//
// Invariant: a consumer that does a first read and then follows delta
// links misses no change and never sees a row state older than one it
// already saw, even when writes happen while it pages.
//
//   - Never older: every row served is its current state, read in one
//     transaction per page, and versions only grow; a consumer therefore
//     sees the states of one id in the order they were written (a state may
//     repeat, never go back).
//   - No change missed: let a change of id x get version w > V. Until
//     another change of x it stays in vers at key w. If w <= U and the
//     delta read's cursor has not passed w, the read serves it; if the
//     cursor passed w before x changed, the read served it then. If x
//     changed again, that change has version > U (U was current when the
//     read started and versions grow), so it is served by the next read,
//     which starts at U. Changes with w > U are likewise left to the next
//     read. Changes with w <= V were either seen by the first read (whose
//     pages read current state after V was captured) or belong to rows the
//     first read passed before the change; the latter have w > V. So every
//     change after V is served by some read, and every row the first read
//     did not see in its latest state has a change after V.
//
// Tokens hold only versions and times, both kept in the state directory or
// the token itself, so they stay valid across restarts.

// deltaTimeLayout is the time part of a delta token, as Dataverse writes it
// (919042!08/22/2017 08:10:44).
const deltaTimeLayout = "01/02/2006 15:04:05"

func deltaToken(v uint64, issued time.Time) string {
	return strconv.FormatUint(v, 10) + "!" + issued.UTC().Format(deltaTimeLayout)
}

func errBadToken(tok string) *apiError {
	return errQuery("The delta token '%s' is not valid for this environment; start again with a read that has Prefer: odata.track-changes.", tok)
}

func parseDeltaToken(tok string) (uint64, time.Time, error) {
	vs, ts, ok := strings.Cut(tok, "!")
	v, err := strconv.ParseUint(vs, 10, 64)
	if !ok || err != nil {
		return 0, time.Time{}, errBadToken(tok)
	}
	issued, err := time.Parse(deltaTimeLayout, ts)
	if err != nil {
		return 0, time.Time{}, errBadToken(tok)
	}
	return v, issued, nil
}

// A change-read skip token: "t.<V>.<issued unix>.<last id hex>" within a
// first read, "d.<U>.<issued unix>.<last version>" within a delta read.
type skipToken struct {
	first  bool
	bound  uint64
	issued time.Time
	after  []byte // first read: last id served
	last   uint64 // delta read: last version served
}

func (s skipToken) String() string {
	if s.first {
		return fmt.Sprintf("t.%d.%d.%s", s.bound, s.issued.Unix(), hex.EncodeToString(s.after))
	}
	return fmt.Sprintf("d.%d.%d.%d", s.bound, s.issued.Unix(), s.last)
}

func parseSkipToken(s string, first bool) (skipToken, error) {
	bad := errQuery("The $skiptoken '%s' is not valid for this request; follow the @odata.nextLink as returned.", s)
	p := strings.Split(s, ".")
	if len(p) != 4 || (first && p[0] != "t") || (!first && p[0] != "d") {
		return skipToken{}, bad
	}
	bound, err1 := strconv.ParseUint(p[1], 10, 64)
	unix, err2 := strconv.ParseInt(p[2], 10, 64)
	st := skipToken{first: first, bound: bound, issued: time.Unix(unix, 0).UTC()}
	var err3 error
	if first {
		st.after, err3 = hex.DecodeString(p[3])
		if len(st.after) != 16 {
			err3 = fmt.Errorf("id length %d", len(st.after))
		}
	} else {
		st.last, err3 = strconv.ParseUint(p[3], 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil {
		return skipToken{}, bad
	}
	return st, nil
}

// getChanges serves a first read or a delta read of t.
func (e *Emulator) getChanges(w http.ResponseWriter, r *http.Request, t *table, v url.Values, p prefs) error {
	if !t.Tracked {
		return &apiError{http.StatusBadRequest, codeNotTracked, fmt.Sprintf("Entity %s isn't enabled for change tracking.", t.Name)}
	}
	var refused []string
	for name := range v {
		switch name {
		case "$select", "$deltatoken", "$skiptoken":
		default:
			refused = append(refused, name)
		}
	}
	if len(refused) > 0 {
		return errQuery("The following query parameters are not supported with change tracking: %s.", strings.Join(sortedStrings(refused), ", "))
	}
	q := &query{}
	if s := v.Get("$select"); s != "" {
		sel, err := parseSelect(t, s)
		if err != nil {
			return err
		}
		q.selectRaw, q.sel = s, sel
	}
	base := e.base(r)
	rows := bytes.NewBuffer(make([]byte, 0, 64<<10))
	var (
		link string
		n    int
		err  error
	)
	if tok := v.Get("$deltatoken"); tok != "" {
		link, n, err = e.deltaPage(rows, r, t, q, p, tok, v.Get("$skiptoken"))
	} else {
		link, n, err = e.firstPage(rows, r, t, q, p, v.Get("$skiptoken"))
	}
	if err != nil {
		return err
	}
	// As in the service's answers, a delta link precedes the value and a
	// next link follows it.
	buf := bytes.NewBuffer(make([]byte, 0, rows.Len()+1024))
	buf.WriteString(`{"@odata.context":`)
	buf.Write(appendJSONString(nil, base+"/$metadata#"+selectContext(t, q)+"/$delta"))
	if strings.HasPrefix(link, deltaMember) {
		buf.WriteString(link)
	}
	buf.WriteString(`,"value":[`)
	buf.Write(rows.Bytes())
	buf.WriteByte(']')
	if strings.HasPrefix(link, nextMember) {
		buf.WriteString(link)
	}
	buf.WriteByte('}')
	w.Header().Set("Preference-Applied", p.applied(true))
	e.stats.rows.Add(int64(n))
	writeBody(w, http.StatusOK, buf.Bytes())
	return nil
}

const (
	nextMember  = `,"@odata.nextLink":`
	deltaMember = `,"@odata.deltaLink":`
)

func nextLinkMember(link string) string {
	return nextMember + string(appendJSONString(nil, link))
}

func deltaLinkMember(link string) string {
	return deltaMember + string(appendJSONString(nil, link))
}

// firstPage writes the entries of one page of a first read to buf; it
// returns the page's link member (next or delta link) and the number of
// entries written.
func (e *Emulator) firstPage(buf *bytes.Buffer, r *http.Request, t *table, q *query, p prefs, skip string) (string, int, error) {
	var st skipToken
	if skip != "" {
		var err error
		if st, err = parseSkipToken(skip, true); err != nil {
			return "", 0, err
		}
	}
	out, an, limit := outAttrs(t, q.sel), p.annotate(), p.pageSize()
	more := false
	n := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		if skip == "" {
			st = skipToken{first: true, bound: currentVersion(tx), issued: e.now().UTC().Truncate(time.Second)}
		}
		s := e.newScan(tx, t, st.after)
		var row []byte
		for {
			k, version, err := s.next()
			if err != nil || k == nil {
				return err
			}
			if n == limit {
				more = true
				return nil
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			row = appendRow(row[:0], "", s.fields, version, out, an)
			buf.Write(row)
			st.after = append(st.after[:0], k...)
			n++
		}
	})
	if err != nil {
		return "", 0, err
	}
	base := e.base(r) + "/" + t.SetName + "?"
	if more {
		return nextLinkMember(base + linkQuery("$select", q.selectRaw, "$skiptoken", st.String())), n, nil
	}
	return deltaLinkMember(base + linkQuery("$select", q.selectRaw, "$deltatoken", deltaToken(st.bound, st.issued))), n, nil
}

// deltaPage writes one page of a delta read from token tok.
func (e *Emulator) deltaPage(buf *bytes.Buffer, r *http.Request, t *table, q *query, p prefs, tok, skip string) (string, int, error) {
	from, issued, err := parseDeltaToken(tok)
	if err != nil {
		return "", 0, err
	}
	var st skipToken
	if skip != "" {
		if st, err = parseSkipToken(skip, false); err != nil {
			return "", 0, err
		}
	} else if maxAge := e.currentFaults().TokenMaxAge; maxAge > 0 && e.now().Sub(issued) > maxAge {
		return "", 0, errExpiredToken()
	}
	out, an, limit := outAttrs(t, q.sel), p.annotate(), p.pageSize()
	deleted := `{"@odata.context":` + string(appendJSONString(nil, e.base(r)+"/$metadata#"+t.SetName+"/$deletedEntity")) + `,"id":"`
	more := false
	n := 0
	err = e.db.View(func(tx *bolt.Tx) error {
		if skip == "" {
			// A token above the current version, or below the generated
			// rows' versions (which have no change entries to serve from
			// it), was not issued by this environment: say it expired, so
			// that a client re-initialises, as it must after the state
			// directory was recreated.
			cur := currentVersion(tx)
			if from > cur || from < e.generated {
				return errExpiredToken()
			}
			st = skipToken{bound: cur, issued: e.now().UTC().Truncate(time.Second), last: from}
		}
		rows := tx.Bucket(rowsBucket(t))
		c := tx.Bucket(versBucket(t)).Cursor()
		fields := make([][]byte, len(t.cols))
		var row []byte
		for k, val := c.Seek(u64(st.last + 1)); k != nil; k, val = c.Next() {
			ver := binary.BigEndian.Uint64(k)
			if ver > st.bound {
				return nil
			}
			if n == limit {
				more = true
				return nil
			}
			if len(val) != 17 {
				return fmt.Errorf("%s change %d: %w", t.Name, ver, errCorrupt)
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			if val[16] == opDelete {
				buf.WriteString(deleted)
				buf.WriteString(uuid.UUID(val[:16]).String())
				buf.WriteString(`","reason":"deleted"}`)
			} else {
				rec := rows.Get(val[:16])
				if rec == nil {
					return fmt.Errorf("%s change %d names a missing row: %w", t.Name, ver, errCorrupt)
				}
				version, err := decodeRecord(rec, fields)
				if err != nil {
					return fmt.Errorf("%s change %d: %w", t.Name, ver, err)
				}
				row = appendRow(row[:0], "", fields, version, out, an)
				buf.Write(row)
			}
			st.last = ver
			n++
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	base := e.base(r) + "/" + t.SetName + "?"
	if more {
		return nextLinkMember(base + linkQuery("$select", q.selectRaw, "$deltatoken", tok, "$skiptoken", st.String())), n, nil
	}
	return deltaLinkMember(base + linkQuery("$select", q.selectRaw, "$deltatoken", deltaToken(st.bound, st.issued))), n, nil
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
