package tsql

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1", " SELECT 2"}},
		{"SELECT ';'; SELECT \";\"", []string{"SELECT ';'", ` SELECT ";"`}},
		{"SELECT 1 -- ;\n; /* ; /* ; */ */ SELECT [a;b]", []string{"SELECT 1 -- ;\n", " /* ; /* ; */ */ SELECT [a;b]"}},
		{"SELECT $$;$$; SELECT $x$ ; $x$", []string{"SELECT $$;$$", " SELECT $x$ ; $x$"}},
		{"SELECT E'\\';'", []string{"SELECT E'\\';'"}},
		{" ; -- nothing\n;", nil},
		{"", nil},
	} {
		got, err := Split(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"SELECT 'x", `SELECT "x`, "SELECT [x", "SELECT /* x", "SELECT $a$ x"} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q): no error", bad)
		}
	}
}

func TestWords(t *testing.T) {
	ws, err := Words(`SET  search_path TO "my ""s""", N'it''s', [a]]b] -- x`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.Value())
	}
	if want := []string{"SET", "search_path", "TO", `my "s"`, ",", "it's", ",", "a]b"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzLex: the tokens of any text make the text again, and Split never
// loses a character that is not a separator.
func FuzzLex(f *testing.F) {
	for _, s := range []string{"SELECT [a]]b], N'x''y' FROM t; SELECT $1", "/* /* */ */ -- x\n", "SELECT [1, ['a]'], 2]", "$tag$ x $tag$", "E'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := lex(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, tok := range toks {
			if tok.text == "" {
				t.Fatalf("empty token in %q", s)
			}
			b.WriteString(tok.text)
		}
		if b.String() != s {
			t.Fatalf("tokens make %q, not %q", b.String(), s)
		}
		stmts, err := Split(s)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Join(stmts, "")); n > len(s) {
			t.Fatalf("Split made text longer: %q", stmts)
		}
	})
}
