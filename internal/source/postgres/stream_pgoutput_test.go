package postgres

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/jackc/pglogrepl"
)

// tupleBytes encodes a TupleData: each column is nil (NULL), "\x00u"
// (unchanged TOAST) or its text.
func tupleBytes(cols ...any) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for _, c := range cols {
		switch c := c.(type) {
		case nil:
			b = append(b, 'n')
		case byte:
			b = append(b, c)
		case string:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
			b = append(b, c...)
		}
	}
	return b
}

func rowBytes(kind byte, rel uint32, parts ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{kind}, rel)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseRow(t *testing.T) {
	tests := []struct {
		name    string
		src     []byte
		want    rowMsg
		wantErr bool
	}{
		{"insert", rowBytes('I', 7, []byte{'N'}, tupleBytes("1", nil, "x")),
			rowMsg{kind: 'I', rel: 7, new: []tupleCol{{colText, []byte("1")}, {colNull, nil}, {colText, []byte("x")}}}, false},
		{"update", rowBytes('U', 8, []byte{'N'}, tupleBytes("1", byte(colToast))),
			rowMsg{kind: 'U', rel: 8, new: []tupleCol{{colText, []byte("1")}, {colToast, nil}}}, false},
		{"update with old key", rowBytes('U', 8, []byte{'K'}, tupleBytes("1", nil), []byte{'N'}, tupleBytes("2", "")),
			rowMsg{kind: 'U', rel: 8, hasOld: true, old: []tupleCol{{colText, []byte("1")}, {colNull, nil}}, new: []tupleCol{{colText, []byte("2")}, {colText, []byte{}}}}, false},
		{"delete", rowBytes('D', 9, []byte{'O'}, tupleBytes("1")),
			rowMsg{kind: 'D', rel: 9, hasOld: true, old: []tupleCol{{colText, []byte("1")}}}, false},
		{"short", rowBytes('I', 7, []byte{'N'}, tupleBytes("1")[:5]), rowMsg{}, true},
		{"trailing bytes", rowBytes('I', 7, []byte{'N'}, tupleBytes("1"), []byte{0}), rowMsg{}, true},
		{"unknown column kind", rowBytes('I', 7, []byte{'N'}, tupleBytes(byte('z'))), rowMsg{}, true},
		{"delete without old tuple", rowBytes('D', 9, []byte{'N'}, tupleBytes("1")), rowMsg{}, true},
		{"not a row message", rowBytes('B', 9, []byte{'N'}), rowMsg{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m rowMsg
			err := parseRow(tt.src, &m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseRow: err %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if m.kind != tt.want.kind || m.rel != tt.want.rel || m.hasOld != tt.want.hasOld || !sameCols(m.old, tt.want.old) || !sameCols(m.new, tt.want.new) {
				t.Fatalf("parseRow = %+v, want %+v", m, tt.want)
			}
		})
	}
}

func sameCols(a, b []tupleCol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || !bytes.Equal(a[i].data, b[i].data) {
			return false
		}
	}
	return true
}

// FuzzParseRow checks parseRow against pglogrepl's parser: whatever both
// accept, they read alike. (pglogrepl accepts trailing bytes and refuses
// zero-column tuples, so neither accepts a subset of the other.)
func FuzzParseRow(f *testing.F) {
	f.Add(rowBytes('I', 7, []byte{'N'}, tupleBytes("1", nil, "x")))
	f.Add(rowBytes('U', 8, []byte{'K'}, tupleBytes("1", nil), []byte{'N'}, tupleBytes("2", byte(colToast))))
	f.Add(rowBytes('U', 8, []byte{'N'}, tupleBytes("1")))
	f.Add(rowBytes('D', 9, []byte{'O'}, tupleBytes("1", "2")))
	f.Add([]byte{'I'})
	f.Fuzz(func(t *testing.T, src []byte) {
		var m rowMsg
		if err := parseRow(src, &m); err != nil {
			return
		}
		ref, ok := refParse(src)
		if !ok {
			return
		}
		old, new := refTuples(ref)
		if m.hasOld != (old != nil) || !sameCols(m.old, toCols(old)) || !sameCols(m.new, toCols(new)) {
			t.Fatalf("parseRow(%x) = %+v, pglogrepl %+v", src, m, ref)
		}
	})
}

// refParse parses with pglogrepl, which panics on some malformed input.
func refParse(src []byte) (m pglogrepl.Message, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	m, err := pglogrepl.Parse(src)
	return m, err == nil
}

func refTuples(m pglogrepl.Message) (old, new *pglogrepl.TupleData) {
	switch m := m.(type) {
	case *pglogrepl.InsertMessage:
		return nil, m.Tuple
	case *pglogrepl.UpdateMessage:
		return m.OldTuple, m.NewTuple
	case *pglogrepl.DeleteMessage:
		return m.OldTuple, nil
	}
	return nil, nil
}

func toCols(td *pglogrepl.TupleData) []tupleCol {
	if td == nil {
		return nil
	}
	var cols []tupleCol
	for _, c := range td.Columns {
		tc := tupleCol{kind: c.DataType}
		if c.DataType == colText || c.DataType == 'b' {
			tc.data = c.Data
		}
		cols = append(cols, tc)
	}
	return cols
}
