package sqldb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzQuote checks the quoting the generated SQL relies on, against DuckDB
// itself: a string literal reads back as the string, a quoted identifier
// names a column exactly, and an escaped path globs to that one file and
// no neighbour it would match as a pattern.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"plain", "it's", "''", `"`, `a"b`, "order", "select", "my table", "b*", "c?d", "a[1]", "[", "]",
		"[!a]", "**", "e{x,y}", `back\slash`, "😀", "中文", "tab\there", "new\nline", "-", ".hidden", `0*0\`, `a\[b`} {
		f.Add(s)
	}
	l := newTestLake(f)
	db := l.open()
	// Under the lake root: the database reads no other files.
	dir := filepath.Join(l.st.Root(), "quote")
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			// Out of domain: DuckDB text is UTF-8 without NUL, names are non-empty.
			return
		}
		if got := query(t, db, `SELECT `+quoteString(s)); len(got) != 1 || got[0] != s {
			t.Errorf("string literal %s reads back as %q", quoteString(s), got)
		}
		rows, err := db.Query(t.Context(), `SELECT 1 AS `+quoteIdent(s))
		if err != nil {
			t.Fatalf("identifier %s: %v", quoteIdent(s), err)
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil || len(cols) != 1 || cols[0] != s {
			t.Errorf("identifier %s names column %q, %v", quoteIdent(s), cols, err)
		}
		name := strings.ReplaceAll(s, "/", "_")
		if name == "." || name == ".." || len(name) > 200 {
			return
		}
		sub, err := os.MkdirTemp(dir, "q")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(sub)
		// The file itself and names its pattern reading would also match.
		for _, n := range []string{name, name + "x", "x" + name, "a"} {
			if err := os.WriteFile(filepath.Join(sub, n), nil, 0o644); err != nil {
				return // a name this file system refuses
			}
		}
		want := filepath.Join(sub, name)
		got := query(t, db, `SELECT file FROM glob(`+quoteString(globEscape(want))+`)`)
		if len(got) != 1 || got[0] != want {
			t.Errorf("path %q escaped as %q globs to %q", want, globEscape(want), got)
		}
	})
}
