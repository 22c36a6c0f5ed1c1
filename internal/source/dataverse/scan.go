package dataverse

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// errFallback tells decodePage to decode the page with encoding/json: the
// scanner met something it does not handle, or malformed JSON (whose error
// encoding/json reports better).
var errFallback = errors.New("page needs the general decoder")

// scanner reads the JSON of one page. It accepts a strict subset of JSON:
// an object whose members are scalars, except "value", an array of flat
// objects whose members are scalars. Invariant: whatever it accepts,
// encoding/json decodes to the same values.
type scanner struct {
	s string
	i int
}

// scanPage is the fast path of decodePage.
func scanPage(text string, l *layout, deleteVersion int64) (*page, error) {
	sc := &scanner{s: text}
	p := newPage()
	e := l.newEntity()
	if !sc.next('{') {
		return nil, errFallback
	}
	if !sc.next('}') {
		for {
			key, ok := sc.key()
			if !ok {
				return nil, errFallback
			}
			if key == "value" {
				if err := sc.entities(l, e, p, deleteVersion); err != nil {
					return nil, err
				}
			} else {
				v, ok := sc.value()
				if !ok {
					return nil, errFallback
				}
				link, isString := v.(string)
				switch key {
				case "@odata.nextLink":
					if !isString {
						return nil, errFallback
					}
					p.next = link
				case "@odata.deltaLink":
					if !isString {
						return nil, errFallback
					}
					p.delta = link
				}
			}
			if sc.next('}') {
				break
			}
			if !sc.next(',') {
				return nil, errFallback
			}
		}
	}
	sc.ws()
	if sc.i != len(sc.s) {
		return nil, errFallback
	}
	return p.finish(l.table)
}

// entities reads the value array, converting each entity as it ends.
func (sc *scanner) entities(l *layout, e *entity, p *page, deleteVersion int64) error {
	if !sc.next('[') {
		return errFallback
	}
	if sc.next(']') {
		return nil
	}
	for {
		if !sc.next('{') {
			return errFallback
		}
		e.reset()
		if !sc.next('}') {
			for {
				k, ok := sc.key()
				if !ok {
					return errFallback
				}
				v, ok := sc.value()
				if !ok {
					return errFallback
				}
				l.member(e, k, v)
				if sc.next('}') {
					break
				}
				if !sc.next(',') {
					return errFallback
				}
			}
		}
		c, err := l.change(e, deleteVersion)
		if err != nil {
			return err
		}
		p.add(c)
		if sc.next(']') {
			return nil
		}
		if !sc.next(',') {
			return errFallback
		}
	}
}

func (sc *scanner) ws() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// next consumes c after optional white space, if it comes next.
func (sc *scanner) next(c byte) bool {
	sc.ws()
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// key reads a member name and its colon.
func (sc *scanner) key() (string, bool) {
	sc.ws()
	k, ok := sc.str()
	if !ok || !sc.next(':') {
		return "", false
	}
	return k, true
}

// value reads a scalar: a string, a json.Number, a bool or nil.
func (sc *scanner) value() (any, bool) {
	sc.ws()
	if sc.i >= len(sc.s) {
		return nil, false
	}
	switch c := sc.s[sc.i]; {
	case c == '"':
		return sc.str()
	case c == '-' || c >= '0' && c <= '9':
		return sc.number()
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if len(sc.s)-sc.i >= len(lit.text) && sc.s[sc.i:sc.i+len(lit.text)] == lit.text {
			sc.i += len(lit.text)
			return lit.v, true
		}
	}
	return nil, false
}

// str reads a string. Strings without escapes are slices of the page text;
// escaped or not valid UTF-8 ones go through encoding/json, so that both
// decoders agree on every string.
func (sc *scanner) str() (string, bool) {
	if sc.i >= len(sc.s) || sc.s[sc.i] != '"' {
		return "", false
	}
	start := sc.i
	simple := true
	for j := start + 1; j < len(sc.s); j++ {
		switch c := sc.s[j]; {
		case c == '"':
			sc.i = j + 1
			if simple {
				body := sc.s[start+1 : j]
				if utf8.ValidString(body) {
					return body, true
				}
			}
			var out string
			if json.Unmarshal([]byte(sc.s[start:j+1]), &out) != nil {
				return "", false
			}
			return out, true
		case c == '\\':
			simple = false
			j++ // the escaped byte cannot end the string
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// number reads a number by the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (sc *scanner) number() (any, bool) {
	s, i := sc.s, sc.i
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	n := json.Number(s[sc.i:i])
	sc.i = i
	return n, true
}
