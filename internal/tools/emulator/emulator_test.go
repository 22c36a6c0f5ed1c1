package emulator

import (
	"net/http"
	"testing"
)

func TestFirstReadThenDelta(t *testing.T) {
	v := start(t, Config{Scale: 30, Seed: 1})
	track := []string{"Prefer", "odata.track-changes, odata.maxpagesize=7"}
	link := "accounts?$select=name"
	n := 0
	var delta string
	for link != "" {
		p := decodePage(t, v.do(t, "GET", link, "", track...))
		n += len(p.Value)
		link, delta = p.NextLink, p.DeltaLink
	}
	if n != 30 || delta == "" {
		t.Fatalf("first read: %d rows, delta link %q; want 30 rows and a delta link", n, delta)
	}
	if a := v.do(t, "POST", "accounts", `{"name":"Fresh"}`); a.status != http.StatusNoContent || a.header.Get("OData-EntityId") == "" {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	p := decodePage(t, v.do(t, "GET", delta, ""))
	if len(p.Value) != 1 || p.Value[0]["name"] != "Fresh" || p.DeltaLink == "" {
		t.Fatalf("delta after create: %+v", p)
	}
}
