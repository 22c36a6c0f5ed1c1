package emulator

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// $filter on data reads: a tokenizer and a recursive-descent parser for
// the part of the OData expression grammar Dataverse serves, bound to the
// table's properties while parsing, so evaluating a row is comparisons of
// stored fields only.
//
//	expr       = and ( "or" and )*
//	and        = unary ( "and" unary )*
//	unary      = "not" unary | comparison
//	comparison = operand [ ( "eq" | "ne" | "gt" | "ge" | "lt" | "le" ) operand ]
//	operand    = "(" expr ")" | function "(" args ")" | property | literal
//
// Functions are contains, startswith and endswith on string properties.
// Literals are 'strings' ('' for a quote), numbers, true/false, null,
// GUIDs, dates (2024-01-02) and date-times (2024-01-02T03:04:05Z).
//
// Semantics follow Dataverse: string comparisons ignore case (the
// service's collation); the patterns of contains/startswith/endswith keep
// SQL LIKE's wildcards (%, _, [set], [^set]), as the service passes them
// to LIKE. Comparisons are two-valued as in OData (a NULL equals only
// null, is unequal to every value and neither greater nor less than one);
// a function of a NULL is unknown, "not unknown" stays unknown, and only
// rows for which the whole expression is true are served.

// maxFilterDepth bounds nesting, so a hostile filter cannot exhaust the
// stack.
const maxFilterDepth = 100

// tri is a three-valued truth value.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// rowValue gives a node access to the row being tested.
type rowValue struct {
	fields  [][]byte
	version uint64
}

// field returns the comparable bytes of a's value: the stored field with
// a lookup reduced to its JSON id, versionnumber as its decimal; nil is NULL.
func (r rowValue) field(a *attribute) []byte {
	if a.col < 0 {
		return strconv.AppendUint(nil, r.version, 10)
	}
	f := r.fields[a.col]
	if f != nil && a.Kind.isLookup() {
		_, f = splitLookup(f)
	}
	return f
}

type filterNode interface {
	eval(r rowValue) tri
}

type andNode struct{ l, r filterNode }
type orNode struct{ l, r filterNode }
type notNode struct{ x filterNode }
type constNode struct{ v tri }

func (n andNode) eval(r rowValue) tri {
	a := n.l.eval(r)
	if a == triFalse {
		return triFalse
	}
	b := n.r.eval(r)
	switch {
	case b == triFalse:
		return triFalse
	case a == triTrue && b == triTrue:
		return triTrue
	}
	return triUnknown
}

func (n orNode) eval(r rowValue) tri {
	a := n.l.eval(r)
	if a == triTrue {
		return triTrue
	}
	b := n.r.eval(r)
	switch {
	case b == triTrue:
		return triTrue
	case a == triFalse && b == triFalse:
		return triFalse
	}
	return triUnknown
}

func (n notNode) eval(r rowValue) tri {
	switch v := n.x.eval(r); v {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	default:
		return v
	}
}

func (n constNode) eval(rowValue) tri { return n.v }

// operand is one side of a comparison: a property or a literal already in
// the stored form of the other side's type (nil: null).
type operand struct {
	attr *attribute
	lit  []byte
}

func (o operand) value(r rowValue) []byte {
	if o.attr != nil {
		return r.field(o.attr)
	}
	return o.lit
}

type cmpNode struct {
	op   string
	kind kind
	l, r operand
}

func (n cmpNode) eval(r rowValue) tri {
	a, b := n.l.value(r), n.r.value(r)
	if a == nil || b == nil {
		eq := a == nil && b == nil
		switch n.op {
		case "eq":
			return boolTri(eq)
		case "ne":
			return boolTri(!eq)
		case "ge", "le":
			return boolTri(eq)
		}
		return triFalse
	}
	c := compareFilter(n.kind, a, b)
	switch n.op {
	case "eq":
		return boolTri(c == 0)
	case "ne":
		return boolTri(c != 0)
	case "gt":
		return boolTri(c > 0)
	case "ge":
		return boolTri(c >= 0)
	case "lt":
		return boolTri(c < 0)
	}
	return boolTri(c <= 0)
}

func boolTri(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// compareFilter orders two non-NULL comparable values of kind k; strings
// ignore case, as the service's collation does.
func compareFilter(k kind, a, b []byte) int {
	switch k {
	case kString, kMemo:
		var x, y string
		if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
			return compareField(k, a, b)
		}
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case kLookup, kCustomer, kOwner, kUniqueID:
		return strings.Compare(strings.ToLower(string(a)), strings.ToLower(string(b)))
	}
	return compareField(k, a, b)
}

// funcNode is contains, startswith or endswith of a string property.
type funcNode struct {
	attr    *attribute
	pattern []likeItem
}

func (n funcNode) eval(r rowValue) tri {
	f := r.field(n.attr)
	if f == nil {
		return triUnknown
	}
	var s string
	if json.Unmarshal(f, &s) != nil {
		return triFalse
	}
	return boolTri(likeMatch(n.pattern, []rune(strings.ToLower(s))))
}

// boolPropNode is a boolean property used as a condition by itself.
type boolPropNode struct{ attr *attribute }

func (n boolPropNode) eval(r rowValue) tri {
	f := r.field(n.attr)
	if f == nil {
		return triUnknown
	}
	return boolTri(string(f) == "true")
}

// A LIKE pattern is a list of items: a literal rune, any one rune (_), any
// run of runes (%), or a set of runes ([abc], [a-z], [^x]).
type likeItem struct {
	kind   byte // 'c' rune, '_' one, '%' any run, '[' set
	r      rune
	negate bool
	ranges [][2]rune
}

// parseLike compiles a LIKE pattern, lower-cased. An unclosed [ is a
// literal bracket, as in SQL Server.
func parseLike(p string) []likeItem {
	rs := []rune(strings.ToLower(p))
	var items []likeItem
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '%':
			if len(items) == 0 || items[len(items)-1].kind != '%' {
				items = append(items, likeItem{kind: '%'})
			}
		case '_':
			items = append(items, likeItem{kind: '_'})
		case '[':
			end := -1
			for j := i + 1; j < len(rs); j++ {
				if rs[j] == ']' && j > i+1 {
					end = j
					break
				}
			}
			if end < 0 {
				items = append(items, likeItem{kind: 'c', r: c})
				continue
			}
			it := likeItem{kind: '['}
			body := rs[i+1 : end]
			if len(body) > 1 && body[0] == '^' {
				it.negate, body = true, body[1:]
			}
			for j := 0; j < len(body); j++ {
				if j+2 < len(body) && body[j+1] == '-' {
					it.ranges = append(it.ranges, [2]rune{body[j], body[j+2]})
					j += 2
					continue
				}
				it.ranges = append(it.ranges, [2]rune{body[j], body[j]})
			}
			items = append(items, it)
			i = end
		default:
			items = append(items, likeItem{kind: 'c', r: c})
		}
	}
	return items
}

func (it likeItem) matches(c rune) bool {
	switch it.kind {
	case 'c':
		return it.r == c
	case '_':
		return true
	}
	in := false
	for _, rg := range it.ranges {
		if c >= rg[0] && c <= rg[1] {
			in = true
			break
		}
	}
	return in != it.negate
}

// likeMatch matches s against the pattern; greedy with backtracking to the
// last %, which is linear in practice and quadratic at worst.
func likeMatch(p []likeItem, s []rune) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi].kind == '%':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi].matches(s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi].kind == '%' {
		pi++
	}
	return pi == len(p)
}

// Tokens.

type tokKind int

const (
	tokEnd tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokGUID
	tokDate
	tokDateTime
	tokOpen
	tokClose
	tokComma
)

type token struct {
	kind tokKind
	text string // raw text; for strings, the unquoted value
	pos  int
}

// lexFilter splits a filter into tokens.
func lexFilter(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			toks = append(toks, token{tokOpen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokClose, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tokComma, ",", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(src) {
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(src[i])
				i++
			}
			if !closed {
				return nil, errQuery("There is an unterminated literal at position %d in '%s'.", start, src)
			}
			toks = append(toks, token{tokString, b.String(), start})
		default:
			start := i
			for i < len(src) && !strings.ContainsRune(" \t\r\n(),'", rune(src[i])) {
				i++
			}
			word := src[start:i]
			if start == i {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, errQuery("Syntax error: character '%c' is not valid at position %d in '%s'.", r, i, src)
			}
			toks = append(toks, token{classify(word), word, start})
		}
	}
	return append(toks, token{tokEnd, "", len(src)}), nil
}

func classify(w string) tokKind {
	c := w[0]
	if c == '-' || c == '+' || (c >= '0' && c <= '9') {
		if len(w) == 36 {
			if _, err := uuid.Parse(w); err == nil {
				return tokGUID
			}
		}
		if _, err := time.Parse(dateOnlyLayout, w); err == nil {
			return tokDate
		}
		if _, err := time.Parse(time.RFC3339Nano, w); err == nil {
			return tokDateTime
		}
		if isNumber(w) {
			return tokNumber
		}
	}
	if len(w) == 36 {
		if _, err := uuid.Parse(w); err == nil {
			return tokGUID
		}
	}
	return tokIdent
}

// isNumber accepts OData integer, decimal and double literals (an optional
// sign, digits, an optional fraction and exponent; M, D, F or L suffixes).
func isNumber(w string) bool {
	w = strings.TrimRight(w, "mMdDfFlL")
	if _, err := strconv.ParseFloat(w, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
		return false
	}
	return !strings.ContainsAny(w, "xXpP_") && !strings.EqualFold(strings.TrimLeft(w, "+-"), "inf") &&
		!strings.EqualFold(strings.TrimLeft(w, "+-"), "infinity") && !strings.EqualFold(w, "nan")
}

// Parser.

type filterParser struct {
	t     *table
	src   string
	toks  []token
	i     int
	depth int
}

// parseFilter parses and binds a $filter expression against t.
func parseFilter(t *table, src string) (filterNode, error) {
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{t: t, src: src, toks: toks}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if tok := p.peek(); tok.kind != tokEnd {
		return nil, p.syntax(tok.pos)
	}
	return p.asCondition(n)
}

func (p *filterParser) peek() token { return p.toks[p.i] }
func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEnd {
		p.i++
	}
	return t
}

func (p *filterParser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tokIdent && t.text == w
}

func (p *filterParser) syntax(pos int) *apiError {
	return errQuery("Syntax error at position %d in '%s'.", pos, p.src)
}

// parsed is what a sub-expression parses to: a condition, or an operand
// (a property or a literal) that only a comparison can use.
type parsed struct {
	cond filterNode
	attr *attribute
	lit  *token // a literal token (kind tokString, tokNumber, ... or tokIdent true/false/null)
	pos  int
}

func (p *filterParser) asCondition(x parsed) (filterNode, error) {
	switch {
	case x.cond != nil:
		return x.cond, nil
	case x.attr != nil && x.attr.Kind == kBoolean:
		return boolPropNode{x.attr}, nil
	case x.lit != nil && x.lit.kind == tokIdent && (x.lit.text == "true" || x.lit.text == "false"):
		return constNode{boolTri(x.lit.text == "true")}, nil
	}
	return nil, errQuery("The $filter expression must evaluate to a single boolean value.")
}

func (p *filterParser) enter() error {
	p.depth++
	if p.depth > maxFilterDepth {
		return errQuery("The $filter expression at position %d in '%s' is nested too deeply.", p.peek().pos, p.src)
	}
	return nil
}

func (p *filterParser) expr() (parsed, error) {
	if err := p.enter(); err != nil {
		return parsed{}, err
	}
	defer func() { p.depth-- }()
	l, err := p.and()
	if err != nil {
		return parsed{}, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return parsed{}, err
		}
		a, err := p.asCondition(l)
		if err != nil {
			return parsed{}, err
		}
		b, err := p.asCondition(r)
		if err != nil {
			return parsed{}, err
		}
		l = parsed{cond: orNode{a, b}, pos: l.pos}
	}
	return l, nil
}

func (p *filterParser) and() (parsed, error) {
	l, err := p.unary()
	if err != nil {
		return parsed{}, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.unary()
		if err != nil {
			return parsed{}, err
		}
		a, err := p.asCondition(l)
		if err != nil {
			return parsed{}, err
		}
		b, err := p.asCondition(r)
		if err != nil {
			return parsed{}, err
		}
		l = parsed{cond: andNode{a, b}, pos: l.pos}
	}
	return l, nil
}

func (p *filterParser) unary() (parsed, error) {
	if p.isWord("not") {
		pos := p.next().pos
		if err := p.enter(); err != nil {
			return parsed{}, err
		}
		x, err := p.unary()
		p.depth--
		if err != nil {
			return parsed{}, err
		}
		c, err := p.asCondition(x)
		if err != nil {
			return parsed{}, err
		}
		return parsed{cond: notNode{c}, pos: pos}, nil
	}
	return p.comparison()
}

var comparisonOps = map[string]bool{"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true}

// unsupportedOps are OData operators Dataverse does not evaluate.
var unsupportedOps = map[string]bool{"add": true, "sub": true, "mul": true, "div": true, "divby": true, "mod": true, "has": true, "in": true}

func (p *filterParser) comparison() (parsed, error) {
	l, err := p.operand()
	if err != nil {
		return parsed{}, err
	}
	tok := p.peek()
	if tok.kind == tokIdent && unsupportedOps[tok.text] {
		return parsed{}, errQuery("The operator '%s' at position %d in '%s' is not supported.", tok.text, tok.pos, p.src)
	}
	if tok.kind != tokIdent || !comparisonOps[tok.text] {
		return l, nil
	}
	p.next()
	r, err := p.operand()
	if err != nil {
		return parsed{}, err
	}
	n, err := p.bindComparison(tok.text, l, r)
	if err != nil {
		return parsed{}, err
	}
	return parsed{cond: n, pos: l.pos}, nil
}

// operatorKind names an operator as the OData binder's messages do.
var operatorKind = map[string]string{"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual", "lt": "LessThan", "le": "LessThanOrEqual"}

// mirrored is the operator with its operands swapped.
var mirrored = map[string]string{"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}

func (p *filterParser) bindComparison(op string, l, r parsed) (filterNode, error) {
	if l.cond != nil || r.cond != nil {
		// OData compares booleans too, but Dataverse conditions are
		// property-versus-value: refuse rather than guess.
		return nil, errQuery("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
			edmOf(l), edmOf(r), operatorKind[op])
	}
	if l.attr == nil && r.attr != nil {
		l, r, op = r, l, mirrored[op]
	}
	if l.attr == nil {
		return nil, errQuery("The lakelink emulator needs a property on one side of '%s' at position %d in '%s'.", op, l.pos, p.src)
	}
	a := l.attr
	if r.attr != nil {
		if edmType(a) != edmType(r.attr) {
			return nil, errQuery("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
				edmType(a), edmType(r.attr), operatorKind[op])
		}
		return cmpNode{op: op, kind: a.Kind, l: operand{attr: a}, r: operand{attr: r.attr}}, nil
	}
	lit, err := p.bindLiteral(a, *r.lit, op)
	if err != nil {
		return nil, err
	}
	return cmpNode{op: op, kind: a.Kind, l: operand{attr: a}, r: operand{lit: lit}}, nil
}

func edmOf(x parsed) string {
	switch {
	case x.cond != nil:
		return "Edm.Boolean"
	case x.attr != nil:
		return edmType(x.attr)
	}
	return literalEdm(*x.lit)
}

// edmType is the OData type of a property.
func edmType(a *attribute) string {
	if a.col < 0 {
		return "Edm.Int64" // versionnumber
	}
	switch a.Kind {
	case kString, kMemo, kEntityName:
		return "Edm.String"
	case kInteger, kPicklist, kState, kStatus:
		return "Edm.Int32"
	case kBigInt:
		return "Edm.Int64"
	case kMoney, kDecimal:
		return "Edm.Decimal"
	case kDouble:
		return "Edm.Double"
	case kDateTime:
		return "Edm.DateTimeOffset"
	case kDateOnly:
		return "Edm.Date"
	case kBoolean:
		return "Edm.Boolean"
	}
	return "Edm.Guid"
}

func literalEdm(t token) string {
	switch t.kind {
	case tokString:
		return "Edm.String"
	case tokGUID:
		return "Edm.Guid"
	case tokDate:
		return "Edm.Date"
	case tokDateTime:
		return "Edm.DateTimeOffset"
	case tokNumber:
		switch {
		case strings.ContainsAny(t.text, "eE"):
			return "Edm.Double"
		case strings.Contains(t.text, "."):
			return "Edm.Decimal"
		}
		return "Edm.Int32"
	}
	if t.text == "null" {
		return "<null>"
	}
	return "Edm.Boolean"
}

// bindLiteral converts a literal to the comparable form of a's values
// (nil for null), or refuses a literal of another type as the service does.
func (p *filterParser) bindLiteral(a *attribute, lit token, op string) ([]byte, error) {
	if lit.kind == tokIdent && lit.text == "null" {
		return nil, nil
	}
	incompatible := errQuery("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
		edmType(a), literalEdm(lit), operatorKind[op])
	numeric := a.col < 0
	switch a.Kind {
	case kInteger, kPicklist, kState, kStatus, kBigInt, kMoney, kDecimal, kDouble:
		numeric = true
	}
	switch {
	case numeric:
		if lit.kind != tokNumber {
			return nil, incompatible
		}
		return plainDecimal(lit.text, p.src)
	case a.Kind == kString || a.Kind == kMemo:
		if lit.kind != tokString {
			return nil, incompatible
		}
		return appendJSONString(nil, lit.text), nil
	case a.Kind == kBoolean:
		if lit.kind != tokIdent || (lit.text != "true" && lit.text != "false") {
			return nil, incompatible
		}
		return []byte(lit.text), nil
	case a.Kind == kDateTime || a.Kind == kDateOnly:
		if lit.kind != tokDate && lit.kind != tokDateTime && lit.kind != tokString {
			return nil, incompatible
		}
		tm, err := parseDate(lit.text)
		if err != nil {
			return nil, incompatible
		}
		if a.Kind == kDateOnly {
			return appendJSONString(nil, tm.Format(dateOnlyLayout)), nil
		}
		return appendJSONString(nil, tm.UTC().Format(dateTimeLayout)), nil
	}
	// GUIDs: lookups and ids; Dataverse also takes them quoted.
	if lit.kind != tokGUID && lit.kind != tokString {
		return nil, incompatible
	}
	id, err := uuid.Parse(lit.text)
	if err != nil || len(lit.text) != 36 {
		return nil, incompatible
	}
	return guidField(id), nil
}

// plainDecimal writes a number literal as a plain decimal, the form number
// fields are stored in, so compareField orders them exactly.
func plainDecimal(s, src string) ([]byte, error) {
	s = strings.TrimRight(s, "mMdDfFlL")
	if !strings.ContainsAny(s, "eE") {
		s = strings.TrimPrefix(s, "+")
		if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-.") {
			s = strings.Replace(s, ".", "0.", 1)
		}
		s = strings.TrimSuffix(s, ".")
		return []byte(s), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, errQuery("The number '%s' in '%s' is out of range.", s, src)
	}
	return strconv.AppendFloat(nil, f, 'f', -1, 64), nil
}

// stringFunctions are the OData functions Dataverse evaluates.
var stringFunctions = map[string]func(string) string{
	"contains":   func(v string) string { return "%" + v + "%" },
	"startswith": func(v string) string { return v + "%" },
	"endswith":   func(v string) string { return "%" + v },
}

// odataFunctions are canonical OData functions Dataverse does not evaluate.
var odataFunctions = map[string]bool{
	"tolower": true, "toupper": true, "trim": true, "length": true, "indexof": true, "substring": true, "concat": true,
	"matchespattern": true, "year": true, "month": true, "day": true, "hour": true, "minute": true, "second": true,
	"fractionalseconds": true, "totalseconds": true, "date": true, "time": true, "totaloffsetminutes": true, "now": true,
	"mindatetime": true, "maxdatetime": true, "round": true, "floor": true, "ceiling": true, "cast": true, "isof": true,
	"geo.distance": true, "geo.length": true, "geo.intersects": true,
}

func (p *filterParser) operand() (parsed, error) {
	tok := p.next()
	switch tok.kind {
	case tokOpen:
		x, err := p.expr()
		if err != nil {
			return parsed{}, err
		}
		if c := p.next(); c.kind != tokClose {
			return parsed{}, errQuery("')' or operator expected at position %d in '%s'.", c.pos, p.src)
		}
		x.pos = tok.pos
		return x, nil
	case tokString, tokNumber, tokGUID, tokDate, tokDateTime:
		return parsed{lit: &tok, pos: tok.pos}, nil
	case tokIdent:
		switch tok.text {
		case "null", "true", "false":
			return parsed{lit: &tok, pos: tok.pos}, nil
		}
		if p.peek().kind == tokOpen {
			return p.call(tok)
		}
		return p.property(tok)
	case tokEnd:
		return parsed{}, errQuery("Expression expected at position %d in '%s'.", tok.pos, p.src)
	}
	return parsed{}, p.syntax(tok.pos)
}

func (p *filterParser) property(tok token) (parsed, error) {
	name := tok.text
	if head, _, ok := strings.Cut(name, "/"); ok {
		if _, nav := p.t.navs[head]; nav {
			return parsed{}, errQuery("The lakelink emulator does not filter on related tables ('%s' in '%s'); filter on the lookup's _%s_value instead.", name, p.src, p.t.navs[head].attr.Name)
		}
		name = head
	}
	a, ok := p.t.byProp[name]
	if !ok {
		return parsed{}, errNoProperty(name, p.t.entityType())
	}
	return parsed{attr: a, pos: tok.pos}, nil
}

func (p *filterParser) call(name token) (parsed, error) {
	p.next() // (
	fn, ok := stringFunctions[name.text]
	if !ok {
		if odataFunctions[name.text] || odataFunctions[strings.ToLower(name.text)] {
			return parsed{}, errQuery("The function '%s' is not supported in $filter; use contains, startswith or endswith.", name.text)
		}
		if strings.HasPrefix(name.text, "Microsoft.Dynamics.CRM.") {
			return parsed{}, errQuery("The lakelink emulator does not support the query function '%s'.", name.text)
		}
		return parsed{}, errQuery("An unknown function with name '%s' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.", name.text)
	}
	var args []parsed
	if p.peek().kind != tokClose {
		for {
			x, err := p.expr()
			if err != nil {
				return parsed{}, err
			}
			args = append(args, x)
			if p.peek().kind != tokComma {
				break
			}
			p.next()
		}
	}
	if c := p.next(); c.kind != tokClose {
		return parsed{}, errQuery("')' or ',' expected at position %d in '%s'.", c.pos, p.src)
	}
	signature := errQuery("No function signature for the function with name '%s' matches the specified arguments. The function signatures considered are: %s(Edm.String Nullable=true, Edm.String Nullable=true).", name.text, name.text)
	if len(args) != 2 || args[0].attr == nil || edmType(args[0].attr) != "Edm.String" || args[1].lit == nil || args[1].lit.kind != tokString {
		return parsed{}, signature
	}
	return parsed{cond: funcNode{attr: args[0].attr, pattern: parseLike(fn(args[1].lit.text))}, pos: name.pos}, nil
}
