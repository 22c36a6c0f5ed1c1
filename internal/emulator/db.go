package emulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// The state directory holds one bbolt file. Per table:
//
//	rows.<table>  id (16 bytes) -> record (values.go)
//	vers.<table>  version (8 bytes big-endian) -> id (16 bytes) + op byte
//	tomb.<table>  id -> version of its delete
//
// Invariant: every live row has exactly one vers entry, keyed by its
// current version, with op opUpsert; every deleted id has exactly one, with
// op opDelete, and a tomb entry pointing at it. A write removes the id's
// previous vers entry, so vers holds each id's latest change only and a
// delta read returns each id once.
//
// meta holds "version", the environment-wide counter every write bumps
// (Dataverse's versionnumber is one rowversion across the database), and
// "next.<table>", the index of the next sequential id.

const (
	opUpsert byte = 0
	opDelete byte = 1
)

var (
	metaBucket = []byte("meta")
	versionKey = []byte("version")
	seedKey    = []byte("seed")
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
func deleteRecord(tx *bolt.Tx, t *table, id []byte) error {
	rows, vers, tomb := tx.Bucket(rowsBucket(t)), tx.Bucket(versBucket(t)), tx.Bucket(tombBucket(t))
	old := rows.Get(id)
	if old == nil {
		return errNoRow
	}
	if err := vers.Delete(u64(recordVersion(old))); err != nil {
		return err
	}
	if err := rows.Delete(id); err != nil {
		return err
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
