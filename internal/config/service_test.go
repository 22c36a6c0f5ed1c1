package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadService(t *testing.T) {
	for _, c := range []struct {
		name, yaml, err string
	}{
		{"valid", "links_dir: ./links\nlisten: 0.0.0.0:8080\ntokens: tokens\n", ""},
		{"no links dir", "listen: 127.0.0.1:8080\n", "links_dir: missing"},
		{"bad listen", "links_dir: l\nlisten: nowhere\n", `:2: listen: "nowhere" is not a listen address`},
		{"half tls", "links_dir: l\ntls_cert: c.pem\n", "tls_cert: give tls_cert and tls_key together"},
		{"unknown key", "links_dir: l\nlisten_on: x\n", `unknown field "listen_on"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "lakelink.yaml")
			if err := os.WriteFile(file, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := LoadService(file)
			switch {
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want %q", err, c.err)
			case c.err == "":
				if s.LinksDir != filepath.Join(dir, "links") || s.Tokens != filepath.Join(dir, "tokens") {
					t.Fatalf("paths not relative to the file: %+v", s)
				}
			}
		})
	}
}
