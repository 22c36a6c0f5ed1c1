package lake

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/lakelink/lakelink/internal/config"
)

// DefaultFormat is the format of a link whose profile names none, and of
// every lake written before formats had names: the Synapse CSV format.
const DefaultFormat = config.DefaultFormat

// FormatParams is what a format's constructor receives.
type FormatParams struct {
	// Profile is the validated link profile: the format reads its own
	// keys in it (the Synapse format: snapshots, incremental_folders). Nil
	// when a lake is opened without a profile (lakelink unlink --lake): the
	// format's defaults apply.
	Profile *config.Link
}

// FormatOpener makes a Format for one Lake (a Format serves one Lake).
type FormatOpener func(p FormatParams) (Format, error)

var formats = struct {
	sync.RWMutex
	openers map[string]FormatOpener
}{openers: map[string]FormatOpener{}}

// RegisterFormat makes OpenFormat use open for the profiles whose format
// key is name (lower case). Formats call it from init, once per name; the
// package that opens links (internal/link) imports them for that effect,
// so that nothing above the formats names a concrete format type. A second
// registration of a name panics, as it is a programming error.
func RegisterFormat(name string, open FormatOpener) {
	if name == "" || name != strings.ToLower(name) || open == nil {
		panic(fmt.Sprintf("lake.RegisterFormat(%q): want a lower-case name and an opener", name))
	}
	formats.Lock()
	defer formats.Unlock()
	if _, dup := formats.openers[name]; dup {
		panic(fmt.Sprintf("lake.RegisterFormat: format %q registered twice", name))
	}
	formats.openers[name] = open
}

// FormatNames returns the registered format names, sorted.
func FormatNames() []string {
	formats.RLock()
	defer formats.RUnlock()
	out := make([]string, 0, len(formats.openers))
	for n := range formats.openers {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// OpenFormat makes a Format of the registered name ("" is DefaultFormat);
// an unknown name is an error listing the registered ones.
func OpenFormat(name string, p FormatParams) (Format, error) {
	if name == "" {
		name = DefaultFormat
	}
	formats.RLock()
	open, ok := formats.openers[name]
	formats.RUnlock()
	if !ok {
		return nil, fmt.Errorf("format %q is not a lake format this lakelink writes; use one of: %s", name, strings.Join(FormatNames(), ", "))
	}
	f, err := open(p)
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", name, err)
	}
	return f, nil
}
