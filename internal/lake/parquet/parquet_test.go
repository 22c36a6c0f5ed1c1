package parquet

import (
	"math/big"
	"strings"
	"testing"

	"github.com/lakelink/lakelink/internal/lake"
	"github.com/lakelink/lakelink/internal/schema"
)

// FuzzDecimal: Decimal is exact: what it accepts reads back as the same
// number, what it refuses does not fit.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0.00", "1234.5", "99999999999999999999999999999999999999", "-.5", "1.", "+3", "00012.3400"} {
		f.Add(s, uint8(38), uint8(10))
	}
	f.Fuzz(func(t *testing.T, v string, p, s uint8) {
		prec, scale := int32(p%38)+1, int32(s)
		if scale > prec {
			scale = prec
		}
		n, err := Decimal(v, prec, scale)
		want, ok := new(big.Rat).SetString(strings.TrimPrefix(v, "+"))
		plain := v != "" && strings.Trim(strings.TrimLeft(v, "+-"), "0123456789.") == "" && strings.Count(v, ".") <= 1 && strings.Trim(v, "+-.") != "" && !strings.ContainsAny(v[1:], "+-")
		if err != nil {
			if plain && ok {
				// Refused: it must not fit.
				scaled := new(big.Rat).Mul(want, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
				limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(prec)), nil)
				if scaled.IsInt() && scaled.Num().CmpAbs(limit) < 0 {
					t.Fatalf("Decimal(%q, %d, %d) refused a value that fits: %v", v, prec, scale, err)
				}
			}
			return
		}
		if !ok {
			t.Fatalf("Decimal(%q) accepted what big.Rat does not parse", v)
		}
		got := new(big.Rat).SetFrac(n.BigInt(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
		if got.Cmp(want) != 0 {
			t.Fatalf("Decimal(%q, %d, %d) = %s", v, prec, scale, got.FloatString(int(scale)))
		}
	})
}

// TestNames: physical names are unique ignoring case; lakelink's columns
// keep theirs and a clashing source column gets the first free suffix.
func TestNames(t *testing.T) {
	cols := []lake.Column{{Name: "Id", System: true, Type: schema.Guid}, {Name: "id", Type: schema.String}, {Name: "ID_2", Type: schema.String}, {Name: "iD", Type: schema.Int64}}
	got := strings.Join(Names(cols), ",")
	if want := "Id,id_3,ID_2,iD_4"; got != want {
		t.Errorf("Names = %s, want %s", got, want)
	}
}
