// Package tsql is the lake database's tokenizer of SQL text in the
// dialects its clients write (DuckDB, PostgreSQL, T-SQL): Split cuts a text
// of several statements, Words gives a statement's tokens to code that
// recognises statements (the PostgreSQL endpoint's SET, SHOW, COPY). It
// imports nothing of lakelink.
package tsql

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// kind is a token's kind.
type kind int

const (
	space   kind = iota // blanks and comments
	word                // identifier or keyword
	quoted              // "identifier"
	bracket             // [identifier] (or a DuckDB list: see translate)
	str                 // 'string', N'string', E'string', $tag$string$tag$
	number              // 1, 1.5, 1e3, 0x1F
	param               // $1, ?, @name
	op                  // any other character, or a two-character operator
)

// token is a piece of the SQL text; the texts of all tokens make the text.
type token struct {
	kind kind
	text string
}

// upper is a word's text in upper case ("" for other kinds).
func (t token) upper() string {
	if t.kind != word {
		return ""
	}
	return strings.ToUpper(t.text)
}

// SyntaxError is a text the tokenizer cannot split: an unclosed quote,
// bracket or comment.
type SyntaxError struct {
	Offset int
	What   string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at character %d: %s", e.Offset+1, e.What)
}

// lex splits sql into tokens.
func lex(sql string) ([]token, error) {
	var out []token
	for i := 0; i < len(sql); {
		k, n, err := next(sql, i)
		if err != nil {
			return nil, err
		}
		out = append(out, token{kind: k, text: sql[i : i+n]})
		i += n
	}
	return out, nil
}

// next returns the kind and length of the token at sql[i:].
func next(sql string, i int) (kind, int, error) {
	rest := sql[i:]
	r, size := utf8.DecodeRuneInString(rest)
	switch {
	case unicode.IsSpace(r):
		n := len(rest) - len(strings.TrimLeftFunc(rest, unicode.IsSpace))
		return space, n, nil
	case strings.HasPrefix(rest, "--"):
		if end := strings.IndexByte(rest, '\n'); end >= 0 {
			return space, end + 1, nil
		}
		return space, len(rest), nil
	case strings.HasPrefix(rest, "/*"):
		// T-SQL and PostgreSQL nest block comments.
		depth := 0
		for j := 0; j < len(rest)-1; j++ {
			switch rest[j : j+2] {
			case "/*":
				depth++
				j++
			case "*/":
				depth--
				j++
				if depth == 0 {
					return space, j + 1, nil
				}
			}
		}
		return 0, 0, &SyntaxError{Offset: i, What: "a /* comment is not closed"}
	case r == '\'':
		n, err := quotedLen(rest, '\'', i)
		return str, n, err
	case (r == 'N' || r == 'n' || r == 'E' || r == 'e') && len(rest) > 1 && rest[1] == '\'':
		if r == 'E' || r == 'e' {
			n, err := escapeStringLen(rest[1:], i+1)
			return str, n + 1, err
		}
		n, err := quotedLen(rest[1:], '\'', i+1)
		return str, n + 1, err
	case r == '"':
		n, err := quotedLen(rest, '"', i)
		return quoted, n, err
	case r == '[':
		// T-SQL doubles a ] inside brackets; DuckDB lists nest.
		n, err := bracketLen(rest, i)
		return bracket, n, err
	case r == '$':
		if n := dollarTagLen(rest); n > 0 {
			tag := rest[:n]
			end := strings.Index(rest[n:], tag)
			if end < 0 {
				return 0, 0, &SyntaxError{Offset: i, What: "a " + tag + " string is not closed"}
			}
			return str, n + end + n, nil
		}
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j > 1 {
			return param, j, nil
		}
		return op, 1, nil
	case r == '@':
		j := 1
		for j < len(rest) && (rest[j] == '@' || isWordByte(rest[j])) {
			j++
		}
		if j > 1 {
			return param, j, nil
		}
		return op, 1, nil
	case r == '?':
		return param, 1, nil
	case r >= '0' && r <= '9' || r == '.' && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9':
		return number, numberLen(rest), nil
	case r == '_' || unicode.IsLetter(r):
		j := size
		for j < len(rest) {
			r, n := utf8.DecodeRuneInString(rest[j:])
			if r != '_' && r != '$' && r != '#' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				break
			}
			j += n
		}
		return word, j, nil
	}
	for _, two := range []string{"::", "<=", ">=", "<>", "!=", "||", "->", "=>", "**", "!~"} {
		if strings.HasPrefix(rest, two) {
			return op, 2, nil
		}
	}
	return op, size, nil
}

func isWordByte(b byte) bool {
	return b == '_' || b == '#' || b == '$' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= 0x80
}

// quotedLen is the length of the quoted text at s (s[0] is q), a doubled
// q standing for one.
func quotedLen(s string, q byte, at int) (int, error) {
	for j := 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, &SyntaxError{Offset: at, What: fmt.Sprintf("a %c quote is not closed", q)}
}

// escapeStringLen is quotedLen for PostgreSQL's E'...', where a backslash
// escapes the next character.
func escapeStringLen(s string, at int) (int, error) {
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '\'':
			if j+1 < len(s) && s[j+1] == '\'' {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, &SyntaxError{Offset: at, What: "a ' quote is not closed"}
}

// bracketLen is the length of the bracketed text at s: a T-SQL
// identifier ([a]]b]) or a DuckDB list ([1, [2, 3], 'x]'])), whichever
// closes first.
func bracketLen(s string, at int) (int, error) {
	depth := 0
	elemStart := true // after a [ or a comma (and blanks): a list element may start with a quote
	for j := 0; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '[':
			depth++
			elemStart = true
			continue
		case c == ']':
			if depth == 1 && j+1 < len(s) && s[j+1] == ']' && !strings.ContainsAny(s[1:j], "[,'") {
				j++ // a doubled ] in an identifier
				break
			}
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case c == ',':
			elemStart = true
			continue
		case (c == '\'' || c == '"') && elemStart:
			n, err := quotedLen(s[j:], c, at+j)
			if err != nil {
				return 0, err
			}
			j += n - 1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		elemStart = false
	}
	return 0, &SyntaxError{Offset: at, What: "a [ bracket is not closed"}
}

// dollarTagLen is the length of a $tag$ (or $$) at s, 0 if there is none.
func dollarTagLen(s string) int {
	for j := 1; j < len(s); j++ {
		switch {
		case s[j] == '$':
			return j + 1
		case j == 1 && s[j] >= '0' && s[j] <= '9':
			return 0
		case !isWordByte(s[j]) || s[j] == '#':
			return 0
		}
	}
	return 0
}

func numberLen(s string) int {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		j := 2
		for j < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
			j++
		}
		return j
	}
	j := 0
	for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
		j++
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			j = k
		}
	}
	return j
}

// Split returns the statements of sql, separated by semicolons outside
// quotes and comments, without the semicolons; statements of only blanks
// and comments are left out.
func Split(sql string) ([]string, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	var (
		out   []string
		start int
		pos   int
		blank = true
	)
	for _, t := range toks {
		if t.kind == op && t.text == ";" {
			if !blank {
				out = append(out, sql[start:pos])
			}
			start, blank = pos+1, true
		} else if t.kind != space {
			blank = false
		}
		pos += len(t.text)
	}
	if !blank {
		out = append(out, sql[start:])
	}
	return out, nil
}

// Word is a token of a SQL text other than blanks and comments, with its
// place in the text.
type Word struct {
	Text       string
	Start, End int
	// Kind tells identifiers and keywords (Name), "quoted" and [bracketed]
	// identifiers (Quoted), strings (String) and the rest (Other) apart.
	Kind WordKind
}

// WordKind is a Word's kind.
type WordKind int

const (
	Name WordKind = iota
	Quoted
	String
	Other
)

// Words returns the tokens of sql that are not blanks or comments.
func Words(sql string) ([]Word, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	var out []Word
	pos := 0
	for _, t := range toks {
		w := Word{Text: t.text, Start: pos, End: pos + len(t.text), Kind: Other}
		pos = w.End
		switch t.kind {
		case space:
			continue
		case word:
			w.Kind = Name
		case quoted, bracket:
			w.Kind = Quoted
		case str:
			w.Kind = String
		}
		out = append(out, w)
	}
	return out, nil
}

// Upper is a Name's text in upper case, "" for other kinds.
func (w Word) Upper() string {
	if w.Kind != Name {
		return ""
	}
	return strings.ToUpper(w.Text)
}

// Value is the text a Name, Quoted or String word stands for: quotes
// removed and doubled quotes undone (a Name as written).
func (w Word) Value() string {
	t := w.Text
	switch {
	case w.Kind == String && len(t) > 1 && (t[0] == 'N' || t[0] == 'n') && t[1] == '\'':
		t = t[1:]
	case w.Kind == String && len(t) > 1 && (t[0] == 'E' || t[0] == 'e') && t[1] == '\'':
		t = t[1:]
	}
	if len(t) < 2 {
		return t
	}
	switch t[0] {
	case '\'':
		return strings.ReplaceAll(t[1:len(t)-1], "''", "'")
	case '"':
		return strings.ReplaceAll(t[1:len(t)-1], `""`, `"`)
	case '[':
		return strings.ReplaceAll(t[1:len(t)-1], "]]", "]")
	case '$':
		n := dollarTagLen(t)
		return t[n : len(t)-n]
	}
	return t
}
