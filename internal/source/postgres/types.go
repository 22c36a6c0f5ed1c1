package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/lakelink/lakelink/internal/schema"
)

// Built-in type OIDs (pg_type.dat), stable across PostgreSQL versions.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// maxDecimalPrecision is the widest numeric(p,s) that maps to a decimal.
const maxDecimalPrecision = 38

// pgType is the part of pg_type the mapping needs.
type pgType struct {
	typtype  byte   // b base, d domain, e enum, c composite, r range, m multirange, p pseudo
	base     uint32 // domains: the underlying type
	baseMod  int32  // domains: the underlying type's modifier
	elem     uint32 // arrays: the element type
	category byte   // 'A' for arrays
	delim    byte   // array element delimiter
}

// colType is what a (type, modifier) pair maps to.
type colType struct {
	col schema.Column // without Name
	dec decoder
}

type typeKey struct {
	oid uint32
	mod int32
}

// typeCache resolves and remembers column types. Type OIDs of a database
// never change meaning while they exist, so entries never go stale.
type typeCache struct {
	mu    sync.Mutex
	types map[uint32]pgType
	cols  map[typeKey]colType
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (c *typeCache) pgType(ctx context.Context, q querier, oid uint32) (pgType, error) {
	c.mu.Lock()
	t, ok := c.types[oid]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	var typtype, category, delim string
	err := q.QueryRow(ctx, `SELECT typtype::text, typbasetype, typtypmod, typelem, typcategory::text, typdelim::text FROM pg_type WHERE oid = $1`, oid).
		Scan(&typtype, &t.base, &t.baseMod, &t.elem, &category, &delim)
	if err != nil {
		return pgType{}, fmt.Errorf("look up type %d in pg_type: %w", oid, err)
	}
	t.typtype, t.category, t.delim = typtype[0], category[0], delim[0]
	c.mu.Lock()
	if c.types == nil {
		c.types = map[uint32]pgType{}
	}
	c.types[oid] = t
	c.mu.Unlock()
	return t, nil
}

// resolve follows domains down to their base type.
func (c *typeCache) resolve(ctx context.Context, q querier, oid uint32, mod int32) (uint32, int32, pgType, error) {
	for range 32 {
		t, err := c.pgType(ctx, q, oid)
		if err != nil {
			return 0, 0, pgType{}, err
		}
		if t.typtype != 'd' {
			return oid, mod, t, nil
		}
		oid, mod = t.base, t.baseMod
	}
	return 0, 0, pgType{}, fmt.Errorf("type %d: domain chain deeper than 32", oid)
}

// column maps a column type to its CDM column and decoder (the type table
// of docs/postgres.md).
func (c *typeCache) column(ctx context.Context, q querier, oid uint32, mod int32) (colType, error) {
	key := typeKey{oid, mod}
	c.mu.Lock()
	ct, ok := c.cols[key]
	c.mu.Unlock()
	if ok {
		return ct, nil
	}
	var sourceType string
	if err := q.QueryRow(ctx, `SELECT format_type($1::oid, $2::int4)`, oid, mod).Scan(&sourceType); err != nil {
		return colType{}, fmt.Errorf("format type %d: %w", oid, err)
	}
	base, bmod, t, err := c.resolve(ctx, q, oid, mod)
	if err != nil {
		return colType{}, err
	}
	ct.col = schema.Column{SourceType: sourceType, SourceTypeCode: int(oid)}
	if t.category == 'A' && t.elem != 0 {
		ebase, _, _, err := c.resolve(ctx, q, t.elem, -1)
		if err != nil {
			return colType{}, err
		}
		ct.dec = decoder{kind: kindArray, elem: baseKind(ebase), delim: t.delim}

	} else {
		ct.dec = decoder{kind: baseKind(base)}
		switch base {
		case oidVarchar, oidBpchar:
			if bmod >= 4 {
				ct.col.MaxLength = int(bmod - 4)
			}
		case oidName:
			ct.col.MaxLength = 63
		case oidNumeric:
			// Only numeric(p,s) with p <= 38 fits a decimal every
			// reader holds (DuckDB's and SQL Server's widest is 38
			// digits). An unconstrained numeric (up to 131072 digits
			// before the point, NaN, ±Infinity) or a wider one is its
			// exact text, so no value can make the column unreadable.
			ct.dec.kind = kindString
			if bmod >= 4 {
				p := int((bmod - 4) >> 16 & 0xffff)
				// The scale is an 11-bit signed field since PostgreSQL 15.
				s := int(((bmod-4)&0x7ff)^1024) - 1024
				if s < 0 {
					// numeric(p,-s) holds integers of up to p-s digits.
					p, s = p-s, 0
				}
				// numeric(p,s) with s > p (PostgreSQL 15) holds
				// fractions below 10^(p-s): decimal(s,s) holds them.
				p = max(p, s)
				if p <= maxDecimalPrecision {
					ct.dec.kind = kindDecimal
					ct.col.Precision, ct.col.Scale = p, s
				}
			}
		}
	}
	ct.col.Type = ct.dec.kind.cdmType()
	c.mu.Lock()
	if c.cols == nil {
		c.cols = map[typeKey]colType{}
	}
	c.cols[key] = ct
	c.mu.Unlock()
	return ct, nil
}

func baseKind(oid uint32) kind {
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidOID:
		return kindInt
	case oidNumeric:
		return kindDecimal
	case oidFloat4, oidFloat8:
		return kindFloat
	case oidBool:
		return kindBool
	case oidDate:
		return kindDate
	case oidTimestamp:
		return kindTimestamp
	case oidTimestamptz:
		return kindTimestamptz
	case oidUUID:
		return kindGuid
	case oidJSON, oidJSONB:
		return kindJSON
	case oidBytea:
		return kindBytea
	case oidText, oidVarchar, oidBpchar:
		return kindString
	}
	return kindString
}
