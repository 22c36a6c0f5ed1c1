package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// pgoutput's row messages (Insert, Update, Delete) are parsed here rather
// than by pglogrepl, whose parser copies every column's bytes into a new
// slice behind a new struct: three allocations a column, which for a bulk
// update cost about as much as decoding the values themselves. These
// parsers alias the message instead; a column's data is valid only until
// the next message is received, and tuple copies what it keeps.

// Tuple column kinds of pgoutput (protocol version 1).
const (
	colNull  = 'n'
	colToast = 'u'
	colText  = 't'
)

// tupleCol is one column of a pgoutput TupleData.
type tupleCol struct {
	kind byte
	data []byte // the text of a colText column, aliasing the message
}

// rowMsg is a parsed Insert ('I'), Update ('U') or Delete ('D') message.
// For an Update, old is set only when the message carries the old key or
// row ('K' or 'O'); a Delete's old tuple is always set.
type rowMsg struct {
	kind   byte
	rel    uint32
	hasOld bool
	old    []tupleCol
	new    []tupleCol
}

var errShortRow = errors.New("row message ends early")

// parseRow parses src, a whole Insert, Update or Delete message, into m,
// reusing m's column slices.
func parseRow(src []byte, m *rowMsg) error {
	if len(src) < 6 {
		return errShortRow
	}
	m.kind = src[0]
	m.rel = binary.BigEndian.Uint32(src[1:])
	m.hasOld = false
	rest := src[5:]
	var err error
	switch m.kind {
	case 'I':
		if rest[0] != 'N' {
			return fmt.Errorf("insert message: tuple marker %q, want 'N'", rest[0])
		}
		m.new, rest, err = parseTuple(rest[1:], m.new[:0])
	case 'U':
		if rest[0] == 'K' || rest[0] == 'O' {
			m.hasOld = true
			if m.old, rest, err = parseTuple(rest[1:], m.old[:0]); err != nil {
				return err
			}
			if len(rest) == 0 {
				return errShortRow
			}
		}
		if rest[0] != 'N' {
			return fmt.Errorf("update message: tuple marker %q, want 'N'", rest[0])
		}
		m.new, rest, err = parseTuple(rest[1:], m.new[:0])
	case 'D':
		if rest[0] != 'K' && rest[0] != 'O' {
			return fmt.Errorf("delete message: tuple marker %q, want 'K' or 'O'", rest[0])
		}
		m.hasOld = true
		m.old, rest, err = parseTuple(rest[1:], m.old[:0])
	default:
		return fmt.Errorf("message type %q is not a row message", m.kind)
	}
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("row message has %d bytes after its last tuple", len(rest))
	}
	return nil
}

// parseTuple parses a TupleData at the start of src, appending its columns
// to cols, and returns the bytes after it.
func parseTuple(src []byte, cols []tupleCol) ([]tupleCol, []byte, error) {
	if len(src) < 2 {
		return cols, nil, errShortRow
	}
	n := int(binary.BigEndian.Uint16(src))
	src = src[2:]
	for range n {
		if len(src) < 1 {
			return cols, nil, errShortRow
		}
		c := tupleCol{kind: src[0]}
		src = src[1:]
		switch c.kind {
		case colNull, colToast:
		case colText, 'b':
			if len(src) < 4 {
				return cols, nil, errShortRow
			}
			l := binary.BigEndian.Uint32(src)
			src = src[4:]
			if uint64(l) > uint64(len(src)) {
				return cols, nil, errShortRow
			}
			c.data, src = src[:l:l], src[l:]
		default:
			return cols, nil, fmt.Errorf("tuple column kind %q is unknown", c.kind)
		}
		cols = append(cols, c)
	}
	return cols, src, nil
}
