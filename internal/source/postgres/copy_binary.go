package postgres

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/lakelink/lakelink/internal/schema"
)

// The copy asks for a few types in binary format: the server then skips
// formatting them as text (timestamptz output alone is a large part of a
// copy's server time) and the client skips parsing that text. Only types
// whose binary form is fixed and simple are asked for, and the values are
// those the text decoders give.

// binaryOID reports whether a result column of type oid and value kind k is
// fetched in binary format. Both must agree: a column whose reported type is
// anything else (a domain, say) stays in text.
func binaryOID(oid uint32, k kind) bool {
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		return k == kindInt
	case oidBool:
		return k == kindBool
	case oidTimestamp:
		return k == kindTimestamp
	case oidTimestamptz:
		return k == kindTimestamptz
	}
	return false
}

// pgEpoch is 2000-01-01 00:00:00 UTC, the origin of binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// decodeBinary converts the binary value of a non-NULL column of type oid
// (one binaryOID accepts) to what the text decoder gives for the same value.
func decodeBinary(oid uint32, v []byte) (any, error) {
	want := 8
	switch oid {
	case oidBool:
		want = 1
	case oidInt2:
		want = 2
	case oidInt4:
		want = 4
	}
	if len(v) != want {
		return nil, fmt.Errorf("binary value of type %d has %d bytes, want %d", oid, len(v), want)
	}
	switch oid {
	case oidBool:
		return v[0] != 0, nil
	case oidInt2:
		return int64(int16(binary.BigEndian.Uint16(v))), nil
	case oidInt4:
		return int64(int32(binary.BigEndian.Uint32(v))), nil
	case oidInt8:
		return int64(binary.BigEndian.Uint64(v)), nil
	case oidTimestamp, oidTimestamptz:
		us := int64(binary.BigEndian.Uint64(v))
		switch us {
		case math.MaxInt64:
			return schema.Infinity, nil
		case math.MinInt64:
			return schema.NegInfinity, nil
		}
		sec, frac := us/1e6, us%1e6
		if frac < 0 {
			sec, frac = sec-1, frac+1e6
		}
		return lakeTime(time.Unix(pgEpoch+sec, frac*1e3).UTC()), nil
	}
	return nil, fmt.Errorf("no binary decoder for type %d", oid)
}
