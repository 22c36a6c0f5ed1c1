// Package csvfield is lakelink's one CSV field quoter (RFC 4180: a quoted
// field is wrapped in '"' and every '"' in it doubled). The lake's data
// files, its metadata CSVs and the query command's CSV output all write
// fields through it, each with its own rule for when to quote. It owns
// nothing else and imports only the standard library.
package csvfield

import "strings"

// AppendQuoted appends s to buf as a quoted field.
func AppendQuoted(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		buf = append(buf, s[:i+1]...)
		buf = append(buf, '"')
		s = s[i+1:]
	}
	buf = append(buf, s...)
	return append(buf, '"')
}

// NeedsQuotes reports whether s must be quoted to read back as itself: it
// holds a comma, a quote or a line break, or leading or trailing white space
// that a trimming reader would lose. The empty string needs none; a writer
// that must tell it from NULL quotes it anyway.
func NeedsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if strings.ContainsAny(s, ",\"\r\n") {
		return true
	}
	first, last := s[0], s[len(s)-1]
	return first == ' ' || first == '\t' || last == ' ' || last == '\t'
}

// Append appends s to buf, quoted when NeedsQuotes says so, or when it is
// empty and quoteEmpty is set (so that it differs from NULL, an empty field).
func Append(buf []byte, s string, quoteEmpty bool) []byte {
	if NeedsQuotes(s) || s == "" && quoteEmpty {
		return AppendQuoted(buf, s)
	}
	return append(buf, s...)
}
