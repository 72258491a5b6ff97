package shipper

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/shipper/diskqueue"
)

// queue holds an output's lines until the output is finished with them. Every batch of
// lines is kept in memory (the newest BufferLimit lines) and, when the output has a disk
// queue, appended to it as one record before add returns. Batches are sent from memory
// while they are there; what memory let go of (an outage longer than memory holds, or a
// restart) is sent from the disk queue, the backlog.
//
// The backlog does not hold "now" back: the output alternates, one batch of the newest
// lines in memory (newest first), then one batch of the backlog (oldest first), so new
// points reach the destination within a batch or two while a backlog of hours drains
// behind them, one batch at a time.
type queue struct {
	mu        sync.Mutex
	ring      []entry // unsent, oldest first
	ringLines int
	limit     int // lines in memory: ring plus the batch in flight
	inflight  int // lines of the batch in flight taken from memory
	memOnly   int // lines not on disk, in the ring or in flight
	dropped   uint64
	disk      *diskqueue.Queue // nil: memory only
	diskErr   uint64           // appends the disk refused
	failing   bool             // the last append failed (logged once per spell)
	backlogUp bool             // the next batch comes from the backlog if there is one
	notify    chan struct{}
	log       logrus.FieldLogger
}

type entry struct {
	lines  [][]byte
	pos    diskqueue.Pos
	onDisk bool
	t      time.Time
}

// batch is what one write sends: lines, and the records they came from, finished with
// once every line is.
type batch struct {
	lines    [][]byte
	refs     []ref
	mem      int // lines taken from memory (counted in queue.inflight)
	backlog  bool
	oldest   time.Time
	memOnlyN int
}

type ref struct {
	pos       diskqueue.Pos
	lines     int
	handedOut bool // read from the disk queue (not from memory)
}

func newQueue(limit int, disk *diskqueue.Queue, log logrus.FieldLogger) *queue {
	return &queue{limit: limit, disk: disk, notify: make(chan struct{}, 1), log: log}
}

// add queues lines in records of at most per lines. It never blocks on the destination;
// a disk that refuses is counted and the lines stay in memory.
func (q *queue) add(lines [][]byte, per int, now time.Time) {
	if len(lines) == 0 {
		return
	}
	q.mu.Lock()
	for len(lines) > 0 {
		n := min(per, len(lines))
		e := entry{lines: lines[:n:n], t: now}
		lines = lines[n:]
		if q.disk != nil {
			pos, err := q.disk.Append(encodeRecord(e.lines), n, now)
			if err != nil {
				q.diskErr++
				if !q.failing {
					q.log.WithError(err).Error("disk queue: cannot append; lines are kept in memory only (lost on a crash) until the disk takes them again")
				}
				q.failing = true
			} else {
				if q.failing {
					q.log.Info("disk queue: appending again")
				}
				q.failing = false
				e.pos, e.onDisk = pos, true
			}
		}
		if !e.onDisk {
			q.memOnly += n
		}
		q.ring = append(q.ring, e)
		q.ringLines += n
	}
	// Memory is bounded: what leaves it is in the backlog if the disk has it.
	for q.ringLines+q.inflight > q.limit && len(q.ring) > 0 {
		e := q.ring[0]
		q.ring[0] = entry{}
		q.ring = q.ring[1:]
		q.ringLines -= len(e.lines)
		if !e.onDisk {
			q.memOnly -= len(e.lines)
			q.dropped += uint64(len(e.lines))
		}
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// next returns the batch to send now, or nil and how long until the lines in memory
// have waited linger (0: nothing waits). force sends a part batch at once.
func (q *queue) next(size int, linger time.Duration, now time.Time, force bool) (*batch, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ready := q.ringLines >= size || q.ringLines > 0 && (force || now.Sub(q.ring[0].t) >= linger)
	if q.disk != nil && (q.backlogUp || !ready) {
		if b := q.backlog(size); b != nil {
			q.backlogUp = false
			return b, 0
		}
	}
	if !ready {
		if q.ringLines == 0 {
			return nil, 0
		}
		return nil, max(linger-now.Sub(q.ring[0].t), time.Millisecond)
	}
	// Oldest first, unless memory is behind (its oldest line has waited more than a
	// second and several flush intervals, as after an outage): then the newest batch
	// goes first, so lines added since the destination came back are not queued behind
	// up to BufferLimit older ones. Within a batch, lines keep their order.
	from, to := 0, 0
	if now.Sub(q.ring[0].t) > max(time.Second, 4*linger) {
		from = len(q.ring) - 1
		for n := len(q.ring[from].lines); from > 0 && n+len(q.ring[from-1].lines) <= size; from-- {
			n += len(q.ring[from-1].lines)
		}
		to = len(q.ring)
	} else {
		for n := 0; to < len(q.ring) && (to == 0 || n+len(q.ring[to].lines) <= size); to++ {
			n += len(q.ring[to].lines)
		}
	}
	b := &batch{oldest: q.ring[from].t}
	for _, e := range q.ring[from:to] {
		q.ringLines -= len(e.lines)
		b.lines = append(b.lines, e.lines...)
		if e.onDisk {
			b.refs = append(b.refs, ref{pos: e.pos, lines: len(e.lines)})
		} else {
			b.memOnlyN += len(e.lines)
		}
	}
	clear(q.ring[from:to])
	q.ring = append(q.ring[:from], q.ring[to:]...)
	b.mem = len(b.lines)
	q.inflight += b.mem
	q.backlogUp = true
	return b, 0
}

// backlog reads a batch of records that memory no longer holds. Called with q.mu held.
func (q *queue) backlog(size int) *batch {
	var before diskqueue.Pos
	for _, e := range q.ring {
		if e.onDisk {
			before = e.pos
			break
		}
	}
	recs, err := q.disk.Read(size, before)
	if err != nil {
		q.log.WithError(err).Warn("disk queue: read failed")
	}
	if len(recs) == 0 {
		return nil
	}
	b := &batch{backlog: true, oldest: recs[0].Time}
	for _, r := range recs {
		ls, err := decodeRecord(r.Data)
		if err != nil { // checksummed, so written so by another version: counted, passed over
			q.log.WithError(err).WithField("record", r.Pos).Warn("disk queue: record not understood, skipped")
			q.disk.Ack(r.Pos, r.Lines, true)
			q.dropped += uint64(r.Lines)
			continue
		}
		b.lines = append(b.lines, ls...)
		b.refs = append(b.refs, ref{pos: r.Pos, lines: r.Lines, handedOut: true})
	}
	if len(b.lines) == 0 {
		return nil
	}
	return b
}

// done marks every line of b finished with.
func (q *queue) done(b *batch) {
	q.mu.Lock()
	q.inflight -= b.mem
	q.memOnly -= b.memOnlyN
	b.mem, b.memOnlyN = 0, 0
	q.mu.Unlock()
	if q.disk != nil {
		for _, r := range b.refs {
			q.disk.Ack(r.pos, r.lines, r.handedOut)
		}
	}
}

// queueStats are what a queue holds and has dropped.
type queueStats struct {
	lines        int
	bytes        int64
	oldest       time.Time
	dropped      uint64
	droppedDisk  uint64
	corrupt      uint64
	diskErrors   uint64
	disk         bool
	unsentMemory int // lines in memory (ring and in flight)
}

func (q *queue) stats() queueStats {
	q.mu.Lock()
	st := queueStats{lines: q.memOnly, dropped: q.dropped, diskErrors: q.diskErr, disk: q.disk != nil,
		unsentMemory: q.ringLines + q.inflight}
	if len(q.ring) > 0 {
		st.oldest = q.ring[0].t
	}
	q.mu.Unlock()
	if q.disk != nil {
		ds := q.disk.Stats()
		st.lines += int(ds.Lines)
		st.bytes = ds.Bytes
		st.dropped += ds.Dropped
		st.droppedDisk = ds.DroppedDisk
		st.corrupt = ds.Corrupt
		if !ds.Oldest.IsZero() && (st.oldest.IsZero() || ds.Oldest.Before(st.oldest)) {
			st.oldest = ds.Oldest
		}
	}
	return st
}

// encodeRecord writes lines as a disk record: each line after its length (uvarint).
func encodeRecord(lines [][]byte) []byte {
	n := 0
	for _, l := range lines {
		n += binary.MaxVarintLen32 + len(l)
	}
	out := make([]byte, 0, n)
	for _, l := range lines {
		out = binary.AppendUvarint(out, uint64(len(l)))
		out = append(out, l...)
	}
	return out
}

var errRecord = errors.New("malformed record: a line length runs past its end")

func decodeRecord(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errRecord
		}
		out = append(out, b[k:k+int(n):k+int(n)])
		b = b[k+int(n):]
	}
	return out, nil
}
