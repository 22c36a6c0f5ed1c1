package dataverse

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodePage(t *testing.T) {
	const (
		a    = "0000000a-0000-4000-8000-00000000abcd"
		b    = "0000000b-0000-4000-8000-00000000abcd"
		del  = `{"@odata.context":"x/$metadata#accounts/$deletedEntity","id":"%s","reason":"deleted"}`
		row  = `{"accountid":"%s","versionnumber":%d}`
		tail = `],"@odata.deltaLink":"http://h/api/data/v9.2/accounts?$deltatoken=9"}`
	)
	page := func(ents ...string) string { return `{"@odata.context":"c","value":[` + strings.Join(ents, ",") + tail }
	for _, tc := range []struct {
		name string
		in   string
		want string // changes as id/version/deleted, or the error text
	}{
		{"rows and a delete", page(fmt.Sprintf(row, a, 5), fmt.Sprintf(del, b)), a + "/5 " + b + "/11D"},
		{"delete superseded by a re-create", page(fmt.Sprintf(del, a), fmt.Sprintf(row, a, 30)), a + "/30"},
		{"delete after a row of the id", page(fmt.Sprintf(row, a, 40), fmt.Sprintf(del, a)), a + "/40 " + a + "/41D"},
		{"upper-case ids", page(fmt.Sprintf(row, strings.ToUpper(a), 5)), a + "/5"},
		{"unknown members skipped", `{"@odata.count":2,"x":{"y":[1]},"value":[],"@odata.nextLink":"http://h/api/data/v9.2/accounts?$skiptoken=1"}`, ""},
		{"no versionnumber", page(`{"accountid":"` + a + `"}`), "versionnumber is missing"},
		{"no primary id", page(`{"versionnumber":1}`), "the primary id is missing"},
		{"bad guid", page(`{"accountid":"nope","versionnumber":1}`), "not a GUID"},
		{"bad decimal", page(`{"accountid":"` + a + `","versionnumber":1,"revenue":"12,5"}`), "not a decimal"},
		{"no links", `{"value":[]}`, "neither @odata.nextLink nor @odata.deltaLink"},
		{"truncated", `{"value":[{"accountid":`, "malformed page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodePage(strings.NewReader(tc.in), fuzzLayout(t), 11)
			var got string
			if err != nil {
				got = err.Error()
				if !errors.As(err, new(*DecodeError)) {
					t.Errorf("error %v is not a *DecodeError", err)
				}
			} else {
				var parts []string
				for _, c := range p.changes {
					s := fmt.Sprintf("%s/%d", c.ID, c.Version)
					if c.Deleted {
						s += "D"
					}
					parts = append(parts, s)
				}
				got = strings.Join(parts, " ")
			}
			if err != nil && !strings.Contains(got, tc.want) || err == nil && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlainDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "1234.50": "1234.50", "-2.5E+3": "-2500", "1e-2": "0.01",
		".5": "0.5", "5.": "5", "00012.3400": "12.3400", "-0.000": "0.000", "45050541514.08": "45050541514.08",
		"1.23456789012345678901234567890E+5": "123456.789012345678901234567890",
	} {
		if got, err := plainDecimal(in); err != nil || got != want {
			t.Errorf("plainDecimal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-", "1.2.3", "1e", "0x10", "1e999", "NaN"} {
		if got, err := plainDecimal(in); err == nil {
			t.Errorf("plainDecimal(%q) = %q, want an error", in, got)
		}
	}
}
