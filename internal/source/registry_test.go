package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/config"
	"github.com/lakelink/lakelink/internal/schema"
)

// plain implements Source only; deletable adds Lifecycle.
type plain struct{ p Params }

func (*plain) Tables(context.Context) ([]TableInfo, error)             { return nil, nil }
func (*plain) Describe(context.Context, string) (*schema.Table, error) { return nil, nil }
func (*plain) Copy(context.Context, string, string, func(context.Context, Batch) error) error {
	return nil
}
func (*plain) Stream(context.Context, map[string]string, func(context.Context, Batch) error) error {
	return nil
}
func (*plain) Close() error { return nil }

type deletable struct{ plain }

func (*deletable) Deleted(context.Context) error { return nil }

func init() {
	Register("test-plain", func(_ context.Context, p Params) (*plain, error) { return &plain{p: p}, nil })
	Register("test-deletable", func(context.Context, Params) (*deletable, error) { return &deletable{}, nil })
	Register("test-failing", func(context.Context, Params) (*plain, error) { return nil, errors.New("refused") })
}

func TestRegistry(t *testing.T) {
	tests := []struct {
		typ                   string
		wantErr               string
		lifecycle, healthRepo bool
	}{
		{typ: "test-plain"},
		{typ: "test-deletable", lifecycle: true},
		{typ: "test-failing", wantErr: "refused"},
		{typ: "nosuch", wantErr: `link.yaml: source.type "nosuch" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			p := &config.Link{File: "link.yaml", Source: config.Source{Type: tt.typ}}
			src, err := Open(context.Background(), Params{Profile: p})
			switch {
			case tt.wantErr != "":
				// A failed constructor's typed nil must not come back as
				// a non-nil Source.
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || src != nil {
					t.Fatalf("Open = %v, %v; want nil and %q", src, err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if _, ok := src.(Lifecycle); ok != tt.lifecycle {
					t.Errorf("opened source implements Lifecycle = %v", ok)
				}
			}
			if got := Implements[Lifecycle](tt.typ); got != tt.lifecycle {
				t.Errorf("Implements[Lifecycle] = %v, want %v", got, tt.lifecycle)
			}
			if got := Implements[HealthReporter](tt.typ); got != tt.healthRepo {
				t.Errorf("Implements[HealthReporter] = %v, want %v", got, tt.healthRepo)
			}
		})
	}
	if s, err := Open(context.Background(), Params{Profile: &config.Link{Source: config.Source{Type: "test-plain"}}}); err != nil || s.(*plain).p.Logger == nil {
		t.Errorf("Open gave the constructor no logger (%v)", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second registration of test-plain did not panic")
		}
	}()
	Register("test-plain", func(context.Context, Params) (*plain, error) { return nil, nil })
}
