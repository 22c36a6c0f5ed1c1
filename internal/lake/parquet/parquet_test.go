package parquet

import (
	"math/big"
	"strings"
	"testing"
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
