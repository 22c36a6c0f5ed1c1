package emulator

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Reads with $orderby on other columns than the key are served in bounded
// memory: each page scans the table and keeps, in a heap, the page-size
// smallest rows that sort after the previous page's last row. The primary
// id breaks ties, so the order is total and pages neither skip nor repeat
// rows that do not change meanwhile. A page costs a table scan, which is
// fine for the emulator's sizes; sync reads never order.

// orderTerm is one $orderby term.
type orderTerm struct {
	attr *attribute
	desc bool
}

func parseOrderBy(t *table, o string) ([]orderTerm, error) {
	var terms []orderTerm
	for _, part := range strings.Split(o, ",") {
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "asc" && f[1] != "desc") {
			return nil, errQuery("Syntax error in $orderby '%s': expected 'property [asc|desc]' terms separated by commas.", o)
		}
		a, ok := t.byProp[f[0]]
		if !ok {
			return nil, errNoProperty(f[0], t.entityType())
		}
		terms = append(terms, orderTerm{a, len(f) == 2 && f[1] == "desc"})
	}
	if len(terms) == 1 && terms[0].attr.Name == t.PrimaryID && !terms[0].desc {
		return nil, nil // key order: the natural one
	}
	return terms, nil
}

// sortKey is the values a row sorts by (fields as stored, lookups reduced
// to their id; nil is NULL) and its id.
type sortKey struct {
	vals [][]byte
	id   []byte
}

func keyOf(terms []orderTerm, fields [][]byte, version uint64, id []byte) sortKey {
	k := sortKey{vals: make([][]byte, len(terms)), id: slices.Clone(id)}
	for i, term := range terms {
		a := term.attr
		var f []byte
		switch {
		case a.col < 0:
			f = strconv.AppendUint(nil, version, 10)
		case fields[a.col] != nil:
			f = fields[a.col]
			if a.Kind.isLookup() {
				_, f = splitLookup(f)
			}
			f = slices.Clone(f)
		}
		k.vals[i] = f
	}
	return k
}

// compareKeys orders NULLs first ascending (as SQL Server does), numbers by
// value, strings, dates and ids by their text, false before true.
func compareKeys(terms []orderTerm, a, b sortKey) int {
	for i, term := range terms {
		c := compareField(term.attr.Kind, a.vals[i], b.vals[i])
		if term.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return bytes.Compare(a.id, b.id)
}

func compareField(k kind, a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch k {
	case kInteger, kPicklist, kState, kStatus, kBigInt, kMoney, kDecimal:
		return compareDecimal(string(a), string(b))
	case kDouble:
		x, _ := strconv.ParseFloat(string(a), 64)
		y, _ := strconv.ParseFloat(string(b), 64)
		return cmpFloat(x, y)
	case kBoolean:
		return strings.Compare(string(a), string(b)) // "false" < "true"
	}
	var x, y string
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Compare(a, b)
	}
	return strings.Compare(x, y)
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// compareDecimal compares plain decimal numbers ("-12.50", "7") exactly.
func compareDecimal(a, b string) int {
	na, nb := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	if na != nb {
		if na {
			return -1
		}
		return 1
	}
	c := compareMagnitude(strings.TrimPrefix(a, "-"), strings.TrimPrefix(b, "-"))
	if na {
		return -c
	}
	return c
}

func compareMagnitude(a, b string) int {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	ai, bi = strings.TrimLeft(ai, "0"), strings.TrimLeft(bi, "0")
	if len(ai) != len(bi) {
		return cmpInt(len(ai), len(bi))
	}
	if c := strings.Compare(ai, bi); c != 0 {
		return c
	}
	for len(af) < len(bf) {
		af += "0"
	}
	for len(bf) < len(af) {
		bf += "0"
	}
	return strings.Compare(af, bf)
}

func cmpInt(x, y int) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// orderedToken is the skip token of an ordered read: the last row's key
// and, under $top, the rows that remain.
type orderedToken struct {
	Vals      []*string `json:"v"`
	ID        string    `json:"i"`
	Remaining int       `json:"r"`
}

func (k sortKey) token(remaining int) string {
	tok := orderedToken{Vals: make([]*string, len(k.vals)), ID: uuid.UUID(k.id).String(), Remaining: remaining}
	for i, v := range k.vals {
		if v != nil {
			s := string(v)
			tok.Vals[i] = &s
		}
	}
	b, _ := json.Marshal(tok)
	return "o." + base64.RawURLEncoding.EncodeToString(b)
}

func parseOrderedToken(s string, terms []orderTerm) (sortKey, int, error) {
	bad := errQuery("The $skiptoken '%s' is not valid for this request; follow the @odata.nextLink as returned.", s)
	raw, ok := strings.CutPrefix(s, "o.")
	b, err := base64.RawURLEncoding.DecodeString(raw)
	var tok orderedToken
	if !ok || err != nil || json.Unmarshal(b, &tok) != nil || len(tok.Vals) != len(terms) {
		return sortKey{}, 0, bad
	}
	id, err := uuid.Parse(tok.ID)
	if err != nil {
		return sortKey{}, 0, bad
	}
	k := sortKey{vals: make([][]byte, len(terms)), id: id[:]}
	for i, v := range tok.Vals {
		if v != nil {
			k.vals[i] = []byte(*v)
		}
	}
	return k, tok.Remaining, nil
}

// candidate is a row kept for an ordered page, already rendered.
type candidate struct {
	key sortKey
	row []byte
}

// maxHeap keeps the largest kept row on top, to be evicted first.
type maxHeap struct {
	terms []orderTerm
	items []candidate
}

func (h *maxHeap) Len() int { return len(h.items) }
func (h *maxHeap) Less(i, j int) bool {
	return compareKeys(h.terms, h.items[i].key, h.items[j].key) > 0
}
func (h *maxHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *maxHeap) Push(x any)    { h.items = append(h.items, x.(candidate)) }
func (h *maxHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// orderedPage writes one page of an ordered read to buf; it returns the
// number of rows and the next page's skip token ("" on the last page).
func (e *Emulator) orderedPage(buf *bytes.Buffer, t *table, q *query, skip string, limit int, out []*attribute, an annotate) (int, string, error) {
	var after *sortKey
	remaining := q.top
	if skip != "" {
		k, rem, err := parseOrderedToken(skip, q.order)
		if err != nil {
			return 0, "", err
		}
		after, remaining = &k, rem
	}
	last := false
	if remaining > 0 && remaining <= limit {
		limit, last = remaining, true
	}
	h := &maxHeap{terms: q.order}
	err := e.db.View(func(tx *bolt.Tx) error {
		s := e.newScan(tx, t, nil)
		for {
			id, version, err := s.next()
			if err != nil || id == nil {
				return err
			}
			if !q.matches(s.fields, version) {
				continue
			}
			k := keyOf(q.order, s.fields, version, id)
			if after != nil && compareKeys(q.order, k, *after) <= 0 {
				continue
			}
			// Keep limit+1 rows: the extra one tells whether a next page exists.
			if h.Len() == limit+1 {
				if compareKeys(q.order, k, h.items[0].key) >= 0 {
					continue
				}
				heap.Pop(h)
			}
			heap.Push(h, candidate{k, appendRow(nil, "", s.fields, version, out, an)})
		}
	})
	if err != nil {
		return 0, "", err
	}
	rows := h.items
	slices.SortFunc(rows, func(a, b candidate) int { return compareKeys(q.order, a.key, b.key) })
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	for i, c := range rows {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.row)
	}
	if !more || last {
		return len(rows), "", nil
	}
	rem := 0
	if remaining > 0 {
		rem = remaining - len(rows)
	}
	return len(rows), rows[len(rows)-1].key.token(rem), nil
}
