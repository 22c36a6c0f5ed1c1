package emulator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// The state directory holds one bbolt file with the changes made since the
// environment was laid out; the generated rows themselves are computed
// (generate.go). Per table:
//
//	rows.<table>  id (16 bytes) -> record (values.go) of every row written
//	vers.<table>  version (8 bytes big-endian) -> id (16 bytes) + op byte
//	tomb.<table>  id -> version of its delete
//
// A row is live if rows holds it, or if it is a generated row (its id is
// in the table's layout) that tomb does not hold.
//
// Invariant: every written live row has exactly one vers entry, keyed by
// its current version, with op opUpsert; every deleted id has exactly one,
// with op opDelete, and a tomb entry pointing at it. A write removes the
// id's previous vers entry, so vers holds each id's latest change only and
// a delta read returns each id once. Generated rows that were never written
// have versions up to the layout's end, below every delta token, so they
// need no vers entry.
//
// meta holds "version", the environment-wide counter every write bumps
// (Dataverse's versionnumber is one rowversion across the database),
// "layout", "seed", and "next.<table>", the index of the next sequential id.

const (
	opUpsert byte = 0
	opDelete byte = 1
)

var (
	metaBucket = []byte("meta")
	versionKey = []byte("version")
	seedKey    = []byte("seed")
	layoutKey  = []byte("layout")
)

func rowsBucket(t *table) []byte { return []byte("rows." + t.Name) }
func versBucket(t *table) []byte { return []byte("vers." + t.Name) }
func tombBucket(t *table) []byte { return []byte("tomb." + t.Name) }
func nextKey(t *table) []byte    { return []byte("next." + t.Name) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// idBase gives a table its sequential id pattern: the first four bytes
// count up from a per-table start, the other twelve are fixed. The ids of
// one table therefore sort in creation order, as SQL Server sequential
// GUIDs do in Dataverse, so consumers keyed by id append.
func idBase(seed int64, table string) uuid.UUID {
	h := fnv.New128a()
	fmt.Fprintf(h, "%d/%s", seed, table)
	var u uuid.UUID
	copy(u[:], h.Sum(nil))
	// Leave room for 2^28 sequential ids above the start.
	u[0] &= 0x0f
	return u
}

func seqID(base uuid.UUID, index uint64) uuid.UUID {
	u := base
	start := binary.BigEndian.Uint32(u[:4])
	binary.BigEndian.PutUint32(u[:4], start+uint32(index))
	return u
}

// bumpVersion returns the next environment version.
func bumpVersion(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(metaBucket)
	v := getU64(meta, versionKey) + 1
	return v, meta.Put(versionKey, u64(v))
}

func currentVersion(tx *bolt.Tx) uint64 {
	return getU64(tx.Bucket(metaBucket), versionKey)
}

// putRecord stores rec (which already carries version) for id and moves
// the id's vers entry to version.
func putRecord(tx *bolt.Tx, t *table, id []byte, version uint64, rec []byte) error {
	rows, vers, tomb := tx.Bucket(rowsBucket(t)), tx.Bucket(versBucket(t)), tx.Bucket(tombBucket(t))
	if old := rows.Get(id); old != nil {
		if err := vers.Delete(u64(recordVersion(old))); err != nil {
			return err
		}
	} else if tv := tomb.Get(id); tv != nil {
		if err := vers.Delete(tv); err != nil {
			return err
		}
		if err := tomb.Delete(id); err != nil {
			return err
		}
	}
	if err := rows.Put(id, rec); err != nil {
		return err
	}
	return vers.Put(u64(version), append(append(make([]byte, 0, 17), id...), opUpsert))
}

var errNoRow = errors.New("no such row")

// deleteRecord removes id's row and records its tombstone at a new version.
func (e *Emulator) deleteRecord(tx *bolt.Tx, t *table, id []byte) error {
	rows, vers, tomb := tx.Bucket(rowsBucket(t)), tx.Bucket(versBucket(t)), tx.Bucket(tombBucket(t))
	if old := rows.Get(id); old != nil {
		if err := vers.Delete(u64(recordVersion(old))); err != nil {
			return err
		}
		if err := rows.Delete(id); err != nil {
			return err
		}
	} else if _, gen := e.genIndex(t, id); !gen || tomb.Get(id) != nil {
		return errNoRow
	}
	v, err := bumpVersion(tx)
	if err != nil {
		return err
	}
	if err := tomb.Put(id, u64(v)); err != nil {
		return err
	}
	return vers.Put(u64(v), append(append(make([]byte, 0, 17), id...), opDelete))
}

func createBuckets(tx *bolt.Tx, tables []*table) error {
	if _, err := tx.CreateBucketIfNotExists(metaBucket); err != nil {
		return err
	}
	for _, t := range tables {
		for _, name := range [][]byte{rowsBucket(t), versBucket(t), tombBucket(t)} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// genIndex returns the index of id among t's generated rows.
func (e *Emulator) genIndex(t *table, id []byte) (int, bool) {
	l := e.layout[t.Name]
	if len(id) != 16 || !bytes.Equal(id[4:], l.Base[4:]) {
		return 0, false
	}
	i := binary.BigEndian.Uint32(id[:4]) - binary.BigEndian.Uint32(l.Base[:4])
	return int(i), uint64(i) < l.Count
}

// get reads the live row id of t into fields (which then alias tx's pages
// or g's buffers). It reports false if there is no such live row.
func (e *Emulator) get(tx *bolt.Tx, t *table, id []byte, g *gen, fields [][]byte) (uint64, bool, error) {
	if rec := tx.Bucket(rowsBucket(t)).Get(id); rec != nil {
		v, err := decodeRecord(rec, fields)
		if err != nil {
			return 0, false, fmt.Errorf("%s row %x: %w", t.Name, id, err)
		}
		return v, true, nil
	}
	i, ok := e.genIndex(t, id)
	if !ok || tx.Bucket(tombBucket(t)).Get(id) != nil {
		return 0, false, nil
	}
	g.row(i)
	copy(fields, g.fields)
	return e.layout[t.Name].First + uint64(i), true, nil
}

// scan walks the live rows of t in id order: the written rows merged with
// the generated ones, a written row replacing the generated row of its id
// and a tombstone hiding it.
type scan struct {
	e      *Emulator
	t      *table
	g      *gen
	c      *bolt.Cursor
	tomb   *bolt.Bucket
	n, gi  int    // generated rows, next generated index
	ok, ov []byte // current written key and record
	key    [16]byte
	fields [][]byte
}

// newScan starts after the key after (nil: from the start).
func (e *Emulator) newScan(tx *bolt.Tx, t *table, after []byte) *scan {
	l := e.layout[t.Name]
	s := &scan{e: e, t: t, g: newGen(t, e.seed, e.layout), c: tx.Bucket(rowsBucket(t)).Cursor(),
		tomb: tx.Bucket(tombBucket(t)), n: int(l.Count), fields: make([][]byte, len(t.cols))}
	if after == nil {
		s.ok, s.ov = s.c.First()
		return s
	}
	s.ok, s.ov = s.c.Seek(after)
	if bytes.Equal(s.ok, after) {
		s.ok, s.ov = s.c.Next()
	}
	s.gi = sort.Search(s.n, func(i int) bool {
		id := seqID(l.Base, uint64(i))
		return bytes.Compare(id[:], after) > 0
	})
	return s
}

// next returns the next live row's key and version, its values in s.fields;
// key is nil at the end. The key and fields stay valid until the next call.
func (s *scan) next() ([]byte, uint64, error) {
	base := s.e.layout[s.t.Name].Base
	for {
		var gid uuid.UUID
		hasGen := s.gi < s.n
		if hasGen {
			gid = seqID(base, uint64(s.gi))
		}
		switch {
		case s.ok == nil && !hasGen:
			return nil, 0, nil
		case s.ok != nil && (!hasGen || bytes.Compare(s.ok, gid[:]) <= 0):
			if hasGen && bytes.Equal(s.ok, gid[:]) {
				s.gi++
			}
			copy(s.key[:], s.ok)
			v, err := decodeRecord(s.ov, s.fields)
			if err != nil {
				return nil, 0, fmt.Errorf("%s row %x: %w", s.t.Name, s.ok, err)
			}
			s.ok, s.ov = s.c.Next()
			return s.key[:], v, nil
		default:
			i := s.gi
			s.gi++
			if s.tomb.Get(gid[:]) != nil {
				continue
			}
			s.g.row(i)
			copy(s.fields, s.g.fields)
			s.key = gid
			return s.key[:], s.e.layout[s.t.Name].First + uint64(i), nil
		}
	}
}
