package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Opener opens the store a lake URL names. It owns everything after the
// scheme: the host, the path and the query, where a backend takes its
// settings (an S3 region, say), so that one string names a lake everywhere
// (a profile, --lake, a log line).
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var registry = struct {
	sync.RWMutex
	openers map[string]Opener
}{openers: map[string]Opener{}}

// Register makes Open use open for the URLs of scheme (lower case, as
// net/url has schemes). Backends call it from init, once per scheme; a
// second registration of a scheme panics, as it is a programming error.
func Register(scheme string, open Opener) {
	if scheme == "" || scheme != strings.ToLower(scheme) || open == nil {
		panic(fmt.Sprintf("store.Register(%q): want a lower-case scheme and an opener", scheme))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.openers[scheme]; dup {
		panic(fmt.Sprintf("store.Register: scheme %q registered twice", scheme))
	}
	registry.openers[scheme] = open
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.openers))
	for s := range registry.openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// hasScheme matches a location that is a URL ("s3://b/p", "file:///srv/x");
// anything else is a path, even one with a colon in it ("a:b").
var hasScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// Parse parses where a lake is: a URL, or a plain path, which stands for
// the file URL of that path (relative paths stay relative: the file store
// resolves them against the working directory). It fails, as Open would,
// when no store is registered for the scheme.
func Parse(location string) (*url.URL, error) {
	u, _, err := parse(location)
	return u, err
}

// Open opens the store at location (see Parse) with the backend registered
// for its scheme.
func Open(ctx context.Context, location string) (Store, error) {
	u, open, err := parse(location)
	if err != nil {
		return nil, err
	}
	return open(ctx, u)
}

func parse(location string) (*url.URL, Opener, error) {
	if location == "" {
		return nil, nil, errors.New("empty lake location: name a folder or a URL such as file:///srv/lake")
	}
	u, shown := &url.URL{Scheme: "file", Path: location}, location
	if hasScheme.MatchString(location) {
		var err error
		if u, err = url.Parse(location); err != nil {
			// url.Error repeats the whole URL, which may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, nil, fmt.Errorf("lake URL: %w", err)
		}
		shown = u.Redacted()
	}
	registry.RLock()
	open, ok := registry.openers[u.Scheme]
	registry.RUnlock()
	if !ok {
		has := "none (the program imports no store package)"
		if s := Schemes(); len(s) > 0 {
			has = strings.Join(s, ", ")
		}
		return nil, nil, fmt.Errorf("lake %s: no store for the scheme %q; the schemes this lakelink opens: %s", shown, u.Scheme, has)
	}
	return u, open, nil
}
