package store

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// opened records the URL an opener was given; a nil Store is enough for the
// registry, which never calls it.
type opened struct {
	Store
	u *url.URL
}

func init() {
	for _, scheme := range []string{"file", "mem"} {
		Register(scheme, func(_ context.Context, u *url.URL) (Store, error) { return opened{u: u}, nil })
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		location string
		// want is the URL the opener gets, as scheme|host|path|query.
		want    string
		wantErr []string // substrings of the error; nil: no error
	}{
		{"lake/sales", "file||lake/sales|", nil},
		{"/srv/lake", "file||/srv/lake|", nil},
		{"a:b/c", "file||a:b/c|", nil},
		{"file:///srv/lake", "file||/srv/lake|", nil},
		{"file://localhost/srv/my%20lake", "file|localhost|/srv/my lake|", nil},
		{"FILE:///srv/lake", "file||/srv/lake|", nil},
		{"mem://bucket/prefix?region=eu-west-1", "mem|bucket|/prefix|region=eu-west-1", nil},
		{"", "", []string{"empty lake location"}},
		{"s3://bucket/prefix", "", []string{`lake s3://bucket/prefix: no store for the scheme "s3"`, "opens: file, mem"}},
		{"s3://key:secret@bucket/p", "", []string{"lake s3://key:xxxxx@bucket/p", `"s3"`}},
		{"mem://bu cket/", "", []string{"lake URL: invalid character"}},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			st, err := Open(t.Context(), tt.location)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("opened %v", st)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows the password", err)
				}
				if _, perr := Parse(tt.location); perr == nil || perr.Error() != err.Error() {
					t.Errorf("Parse: %v, Open: %v", perr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := st.(opened).u
			if got := strings.Join([]string{u.Scheme, u.Host, u.Path, u.RawQuery}, "|"); got != tt.want {
				t.Fatalf("opener got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	if got := Schemes(); !slices.Equal(got, []string{"file", "mem"}) {
		t.Fatalf("Schemes() = %v", got)
	}
	open := func(context.Context, *url.URL) (Store, error) { return nil, errors.ErrUnsupported }
	for _, scheme := range []string{"mem", "", "S3"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", scheme)
				}
			}()
			Register(scheme, open)
		}()
	}
}
