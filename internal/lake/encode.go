package lake

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/lakelink/lakelink/internal/source"
)

// encoded is a commit's rows of one table encoded as CSV: the rows of each
// partition file to write, and the rows of the change file.
type encoded struct {
	parts   map[string]*partBuf
	change  *partBuf
	upserts int64
}

// recycle returns the buffers to their pool; nothing may use them after.
func (e *encoded) recycle() {
	if e.change != nil {
		putPartBuf(e.change)
	}
	for _, pb := range e.parts {
		putPartBuf(pb)
	}
	e.parts, e.change = nil, nil
}

// minSegmentRows is the fewest rows worth a goroutine of their own: below
// it, starting and joining goroutines costs about what they save.
const minSegmentRows = 2048

// encodeChanges encodes the changes of ts. A commit is on the critical
// path of a copy (the source waits while it runs), so a large batch is cut
// into contiguous segments encoded in parallel, and each file's segments
// are joined in order: the bytes are those a sequential encoding gives, and
// the error returned is the one of the first change that fails. On an
// error the buffers are still to be recycled.
func encodeChanges(ts *TableState, changes []source.Change, now time.Time) (*encoded, error) {
	rows := newRowEncoder(ts.Name, ts.Columns, now)
	n := min(runtime.GOMAXPROCS(0), len(changes)/minSegmentRows)
	if n <= 1 {
		out := &encoded{parts: map[string]*partBuf{}, change: getPartBuf()}
		return out, encodeSegment(ts, rows, changes, out)
	}
	segs := make([]*encoded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		segs[i] = &encoded{parts: map[string]*partBuf{}, change: getPartBuf()}
		lo, hi := len(changes)*i/n, len(changes)*(i+1)/n
		// Each segment has its own encoder: encoding updates its mapping.
		seg := rows.fork()
		wg.Go(func() { errs[i] = encodeSegment(ts, seg, changes[lo:hi], segs[i]) })
	}
	wg.Wait()
	out := segs[0]
	for i, seg := range segs[1:] {
		if errs[0] == nil {
			errs[0] = errs[i+1]
		}
		out.join(seg)
	}
	return out, errs[0]
}

// join moves the rows of seg, which come after those of e, into e, and
// recycles what of seg is left.
func (e *encoded) join(seg *encoded) {
	e.change.append(seg.change)
	putPartBuf(seg.change)
	for p, pb := range seg.parts {
		if mine := e.parts[p]; mine != nil {
			mine.append(pb)
			putPartBuf(pb)
		} else {
			e.parts[p] = pb
		}
	}
	seg.parts, seg.change = nil, nil
	e.upserts += seg.upserts
}

// append appends the rows of o to b.
func (b *partBuf) append(o *partBuf) {
	off := len(b.data)
	b.data = append(b.data, o.data...)
	for _, end := range o.ends {
		b.ends = append(b.ends, off+end)
	}
}

// encodeSegment encodes changes into out, stopping at the first that fails.
func encodeSegment(ts *TableState, rows *rowEncoder, changes []source.Change, out *encoded) error {
	part := newPartitioner(ts.Options.Granularity, ts.Columns, ts.Source.PartitionColumn)
	// Consecutive rows mostly share a partition (and the partitioner then
	// returns the same string): its buffer is looked up once per run.
	var lastPart string
	var lastBuf *partBuf
	for i := range changes {
		ch := &changes[i]
		if ch.Table != "" && ch.Table != ts.Name {
			return fmt.Errorf("commit: table %s: change of Id %s belongs to table %s", ts.Name, ch.ID, ch.Table)
		}
		if ch.Truncate {
			return fmt.Errorf("commit: table %s: a truncate reached the row encoder; the lake applies truncates before encoding (applyTruncates)", ts.Name)
		}
		if ch.ID == "" {
			return fmt.Errorf("commit: table %s: a change has an empty Id; the source must give every record a key", ts.Name)
		}
		m, err := rows.resolve(ch)
		if err != nil {
			return err
		}
		pb := out.change
		if ts.Options.AppendOnly || (ts.Phase == InProgress && !ch.Deleted) {
			p := part.of(m, ch)
			if lastBuf == nil || p != lastPart {
				lastBuf = out.parts[p]
				if lastBuf == nil {
					lastBuf = getPartBuf()
					out.parts[p] = lastBuf
				}
				lastPart = p
			}
			pb = lastBuf
			if !ch.Deleted {
				out.upserts++
			}
		}
		// Rows are encoded straight into their file's buffer; on an error
		// the commit fails and the buffers are recycled, contents discarded.
		pb.data, err = rows.encode(pb.data, ch, m)
		if err != nil {
			return err
		}
		pb.endRow()
	}
	return nil
}
