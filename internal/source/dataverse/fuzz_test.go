package dataverse

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
)

// fuzzLayout is the account layout of testdata/fake, without the network.
func fuzzLayout(t testing.TB) *layout {
	var attrs struct {
		Value []attribute `json:"value"`
	}
	readJSON(t, "testdata/fake/account-attributes.json", &attrs)
	return newLayout("account", "accounts", "accountid", columns(attrs.Value))
}

// FuzzDecodePage feeds pages to the decoder: it must never panic, and every
// change it returns must hold values of the schema package's Go types.
func FuzzDecodePage(f *testing.F) {
	for _, seed := range []string{
		`{"@odata.context":"x","value":[],"@odata.deltaLink":"http://h/api/data/v9.2/accounts?$deltatoken=1"}`,
		`{"value":[{"accountid":"0000000A-0000-4000-8000-00000000ABCD","versionnumber":12,"name":"A \"q\"","revenue":1.5E+3,"createdon":"2024-02-29T23:59:59.1234567Z","lastonholdtime":"2024-02-29","donotemail":true,"address1_latitude":"INF","_ownerid_value":"1e5b6f7a-0000-4000-8000-000000000001","_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":"team"}],"@odata.nextLink":"http://h/api/data/v9.2/accounts?$skiptoken=2"}`,
		`{"value":[{"@odata.context":"http://h/api/data/v9.2/$metadata#accounts/$deletedEntity","id":"0000000a-0000-4000-8000-00000000abcd","reason":"deleted"}],"@odata.deltaLink":"http://h/api/data/v9.2/accounts?$deltatoken=9"}`,
		`{"value":[{"accountid":"x","versionnumber":"12"}],"@odata.deltaLink":"d"}`,
		`{"value":[{"accountid":"0000000a-0000-4000-8000-00000000abcd","versionnumber":1,"revenue":"-0.0001e-3","numberofemployees":9223372036854775807}],"@odata.deltaLink":"d"}`,
		`{"value":[`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	l := fuzzLayout(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePage(bytes.NewReader(data), l, 77)
		if err != nil {
			return
		}
		for _, c := range p.changes {
			if c.Deleted {
				if c.Version < 77 || c.Values != nil {
					t.Fatalf("delete %+v", c)
				}
				continue
			}
			if c.ID == "" || c.ID != strings.ToLower(c.ID) || c.Version > p.maxVersion {
				t.Fatalf("change %+v (page max %d)", c, p.maxVersion)
			}
			if len(c.Values) != len(l.fields) {
				t.Fatalf("change %+v: %d values for %d fields", c, len(c.Values), len(l.fields))
			}
			for i, fl := range l.fields {
				v := c.Values[i]
				if c.Columns[i] != fl.Name {
					t.Fatalf("column %d is %s, want %s", i, c.Columns[i], fl.Name)
				}
				if v == nil {
					continue
				}
				if !goTypeOK(fl.Type, v) {
					t.Fatalf("column %s (%s) holds %T %v", fl.Name, fl.Type, v, v)
				}
			}
		}
	})
}

func goTypeOK(t schema.Type, v any) bool {
	switch t {
	case schema.Guid, schema.String, schema.JSON:
		_, ok := v.(string)
		return ok
	case schema.Decimal:
		s, ok := v.(string)
		_, exact := new(big.Rat).SetString(s)
		return ok && exact && !strings.ContainsAny(s, "eE+")
	case schema.Int64:
		_, ok := v.(int64)
		return ok
	case schema.Boolean:
		_, ok := v.(bool)
		return ok
	case schema.DateTime:
		tm, ok := v.(time.Time)
		return ok && tm.Location() == time.UTC
	case schema.Double:
		_, ok := v.(float64)
		return ok
	}
	return false
}

// FuzzPlainDecimal checks plainDecimal against math/big: the plain form
// denotes exactly the number the JSON text does.
func FuzzPlainDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "1234.50", "-2.5E+3", "1e-2", ".5", "5.", "00012.3400", "1E+400", "9.99e-5", "-", "1.2.3", "+7", "1e", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := plainDecimal(s)
		want, ok := new(big.Rat).SetString(s)
		if err != nil {
			return
		}
		if !ok {
			t.Fatalf("plainDecimal(%q) = %q, but it is not a number", s, got)
		}
		r, ok := new(big.Rat).SetString(got)
		if !ok || r.Cmp(want) != 0 || strings.ContainsAny(got, "eE+") || strings.HasPrefix(got, "-0") && r.Sign() == 0 {
			t.Fatalf("plainDecimal(%q) = %q, want the plain form of %s", s, got, want.RatString())
		}
	})
}

// FuzzCursor checks that cursors survive a round trip and that parsing
// never panics nor yields a link outside the Web API.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{
		cursor{Link: "/api/data/v9.2/accounts?$select=name&$deltatoken=12%2101", Max: 9, Delta: true}.String(),
		"https://contoso.crm.dynamics.com/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44",
		`{"link":"http://evil.example/x"}`,
		"{", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor("account", s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(c.Link, apiPath) {
			t.Fatalf("parseCursor(%q) gave link %q outside %s", s, c.Link, apiPath)
		}
		again, err := parseCursor("account", c.String())
		if err != nil || again != c {
			t.Fatalf("round trip of %+v gave %+v, %v", c, again, err)
		}
	})
}

// FuzzScanPage holds the fast page scanner to encoding/json: whenever the
// scanner answers (rather than falling back), the general decoder gives the
// same page or the same error.
func FuzzScanPage(f *testing.F) {
	for _, seed := range []string{
		`{"@odata.context":"x","value":[],"@odata.deltaLink":"http://h/api/data/v9.2/accounts?$deltatoken=1"}`,
		`{"value":[{"accountid":"0000000a-0000-4000-8000-00000000abcd","versionnumber":3,"name":"caf\u00e9 \"x\"\n","revenue":-0.5e2,"donotemail":false,"description":null,"lastonholdtime":"2024-01-01"},` +
			`{"@odata.context":"x/$deletedEntity","id":"0000000b-0000-4000-8000-00000000abcd"}],"@odata.nextLink":"http://h/api/data/v9.2/accounts?$skiptoken=2"}`,
		"{\"value\":[{\"accountid\":\"0000000a-0000-4000-8000-00000000abcd\",\"versionnumber\":1,\"name\":\"\xff\"}],\"@odata.deltaLink\":\"d\"}",
		`{"value":[{"accountid":"0000000a-0000-4000-8000-00000000abcd","versionnumber":1,"versionnumber":2,"name":1}],"@odata.deltaLink":"d"} `,
		`{"value":[{"accountid":"bad","versionnumber":1}],"@odata.deltaLink":"d"}`,
		`{"value":[{"x":[1]}],"@odata.deltaLink":"d"}`,
		`{"value":[{"accountid":"0000000a-0000-4000-8000-00000000abcd","versionnumber":01}]}`,
	} {
		f.Add(seed)
	}
	l := fuzzLayout(f)
	f.Fuzz(func(t *testing.T, text string) {
		fast, ferr := scanPage(text, l, 5)
		if errors.Is(ferr, errFallback) {
			return
		}
		slow, serr := decodePageSlow(strings.NewReader(text), l, 5)
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("scanner: %v\ndecoder: %v", ferr, serr)
		}
		if ferr != nil {
			return
		}
		got := fmt.Sprintf("%v %q %q %d", fast.changes, fast.next, fast.delta, fast.maxVersion)
		want := fmt.Sprintf("%v %q %q %d", slow.changes, slow.next, slow.delta, slow.maxVersion)
		if got != want {
			t.Fatalf("scanner:\n%s\ndecoder:\n%s", got, want)
		}
	})
}
