package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/goccy/go-yaml"
)

// Service is the file `lakelink serve --config` reads: where the link
// profiles live and how the service listens. Every key has a flag of the
// same name that overrides it (docs/serve.md).
type Service struct {
	// LinksDir holds one link profile per link (<name>.yaml), the same
	// files `lakelink sync -c` reads; relative to the service file.
	LinksDir string `yaml:"links_dir"`
	// Listen is the HTTP listen address; default DefaultListen.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are a PEM certificate and key: with both, serve
	// speaks HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Tokens is the file of hashed bearer tokens (`lakelink token
	// create`); without it access control is off, which serve allows on
	// a loopback address only.
	Tokens string `yaml:"tokens"`
	// AuditLog is the file every change is appended to (JSON lines);
	// default audit.log in the links directory.
	AuditLog string `yaml:"audit_log"`
	// TrustProxy takes the client address and scheme from the
	// X-Forwarded-For and X-Forwarded-Proto headers of a reverse proxy.
	TrustProxy bool `yaml:"trust_proxy"`

	// File is the path the service file was loaded from.
	File string `yaml:"-"`
}

// DefaultListen is serve's listen address when none is given: loopback,
// where access control may be off.
const DefaultListen = "127.0.0.1:8080"

// LoadService reads and validates the service file at path; relative
// paths in it are made relative to its directory.
func LoadService(path string) (*Service, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service file: %w", err)
	}
	var s Service
	if err := yaml.UnmarshalWithOptions(data, &s, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: invalid service file:\n%s", path, yaml.FormatError(err, false, true))
	}
	s.File = path
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &Error{File: path, Line: line(data, field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if s.LinksDir == "" {
		fail("links_dir", "missing: the folder holding the link profiles, e.g. ./links")
	}
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			fail("listen", "%q is not a listen address: write host:port, e.g. 127.0.0.1:8080", s.Listen)
		}
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		fail("tls_cert", "give tls_cert and tls_key together")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&s.LinksDir, &s.TLSCert, &s.TLSKey, &s.Tokens, &s.AuditLog} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return &s, nil
}
