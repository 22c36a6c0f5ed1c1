package dataverse

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// cursor is what a Batch's Cursors hold for a Dataverse table, encoded as
// JSON: the next request to make and the highest versionnumber seen so far.
//
// Link is kept relative to the environment URL (path and query of a
// nextLink or deltaLink), so a lake keeps working when the environment is
// reached under another host name (an emulator restarted on a new port, a
// custom domain), and a cursor can never send the bearer token to another
// host.
type cursor struct {
	Link string `json:"link"`
	// Max is the highest versionnumber of the table the connector has seen
	// up to this position; deletes are ordered with it (see stream.go).
	Max int64 `json:"max"`
	// Delta is true when Link is a delta link or a page of a delta read,
	// false during the initial copy.
	Delta bool `json:"delta,omitempty"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// parseCursor reads a cursor made by String. For a cursor made by hand it
// also accepts a bare nextLink or deltaLink URL.
func parseCursor(table, s string) (cursor, error) {
	var c cursor
	if strings.HasPrefix(s, "{") {
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return cursor{}, fmt.Errorf("dataverse table %s: cursor %q is not one this connector wrote: %w; re-initialise the table", table, cut(s), err)
		}
	} else {
		c.Link = s
		c.Delta = strings.Contains(s, "deltatoken")
	}
	rel, err := relativeLink(c.Link)
	if err != nil {
		return cursor{}, fmt.Errorf("dataverse table %s: cursor: %w; re-initialise the table", table, err)
	}
	c.Link = rel
	return c, nil
}

// relativeLink turns a nextLink or deltaLink into its path and query under
// the environment URL.
func relativeLink(link string) (string, error) {
	for i := 0; i < len(link); i++ {
		if link[i] <= ' ' || link[i] >= 0x7f {
			return "", fmt.Errorf("link %q holds a byte a URL cannot (%#x)", cut(link), link[i])
		}
	}
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("link %q is not a URL: %w", cut(link), err)
	}
	i := strings.Index(u.EscapedPath(), apiPath)
	if i < 0 {
		return "", fmt.Errorf("link %q is not under %s", cut(link), apiPath)
	}
	rel := u.EscapedPath()[i:]
	if u.RawQuery != "" {
		rel += "?" + u.RawQuery
	}
	return rel, nil
}
