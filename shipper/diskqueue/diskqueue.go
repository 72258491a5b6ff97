// Package diskqueue is a bounded, append-only queue of records in segment files, with
// acknowledgement in any order. An output appends every batch of lines it is given and
// acknowledges a record once it is finished with it; a segment whose records are all
// acknowledged is deleted. The queue is bounded in bytes: past the bound the oldest
// segment goes, and its unacknowledged lines are counted as dropped.
//
// A record is checksummed (CRC-32C over its header and payload), so a record torn by a
// crash in mid-write, a flipped bit or a file from another version is found, counted
// and skipped; the rest of the queue is delivered.
//
// On disk, a directory of segments named by a 16-digit hexadecimal number, each starting
// with an 8-byte header ("LKQ" and a version byte, 4 reserved bytes), then records:
//
//	crc32c uint32 | length uint32 | lines uint32 | time int64 (unix ns) | payload
//
// all little-endian; the checksum covers everything after itself. A file "acked" holds
// the position of the first record not yet acknowledged (segment, index, checksum),
// written at each Sync: records before it are not sent again after a restart. Records
// acknowledged out of order after it may be (InfluxDB stores an identical point once).
package diskqueue

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	fileHeader   = "LKQ\x01\x00\x00\x00\x00"
	fileHdrSize  = int64(len(fileHeader))
	recHdrSize   = 20
	segSuffix    = ".seg"
	ackFile      = "acked"
	lockFile     = "lock"
	maxRecordLen = 64 << 20 // a record longer than this is taken for corruption
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options bound a queue.
type Options struct {
	// MaxBytes bounds the bytes of all segments; past it the oldest segment goes.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one started;
	// 0 means MaxBytes/16 within [64 KiB, 16 MiB].
	SegmentBytes int64
}

// Pos names a record: its segment and its index within the segment. The zero Pos is no
// record; positions order as records were appended.
type Pos struct {
	Seg uint64
	Idx uint32
}

// Less reports whether p was appended before o.
func (p Pos) Less(o Pos) bool { return p.Seg < o.Seg || (p.Seg == o.Seg && p.Idx < o.Idx) }

// Record is one appended payload.
type Record struct {
	Pos   Pos
	Lines int
	Time  time.Time
	Data  []byte
}

// Stats are the queue's counters.
type Stats struct {
	Bytes          int64     // bytes of every segment on disk
	Lines          int64     // lines not yet acknowledged (of scanned segments)
	Oldest         time.Time // append time of the oldest segment holding unacknowledged lines; zero if none
	Dropped        uint64    // unacknowledged lines deleted for room (MaxBytes)
	DroppedDisk    uint64    // unacknowledged lines deleted to make room on a full disk
	Corrupt        uint64    // records found corrupt (torn, checksum, bad header, unreadable file)
	CorruptBytes   uint64    // bytes passed over with them
	Segments       int
	PendingRecover bool // segments from before the start not yet scanned
}

type segment struct {
	id      uint64
	path    string
	size    int64    // bytes of whole records (and the header)
	offsets []uint32 // offset of each record
	acked   []uint64 // bitmap over record index; corrupt records are set too
	nAcked  int
	lines   int64 // lines of valid records
	ackedLn int64 // lines of acknowledged valid records
	inflt   int64 // lines handed out by Read and not yet acknowledged
	first   time.Time
	scanned bool // offsets and lines known
	cursor  int  // Read's next record index
}

func (s *segment) records() int { return len(s.offsets) }
func (s *segment) isAcked(i int) bool {
	return s.acked[i/64]&(1<<(uint(i)%64)) != 0
}
func (s *segment) setAcked(i int) bool {
	for len(s.acked) <= i/64 {
		s.acked = append(s.acked, 0)
	}
	if s.isAcked(i) {
		return false
	}
	s.acked[i/64] |= 1 << (uint(i) % 64)
	s.nAcked++
	return true
}
func (s *segment) grow() {
	for len(s.acked)*64 < len(s.offsets) {
		s.acked = append(s.acked, 0)
	}
}

// firstUnacked returns the first record index at or after i not acknowledged, or
// records() if none.
func (s *segment) firstUnacked(i int) int {
	n := s.records()
	for i < n {
		k := uint(i) % 64
		// After the shift the word's top k bits are 0, so ^w has at least k trailing
		// zeros fewer than 64: a count below 64-k is an unacknowledged record here.
		if tz := bits.TrailingZeros64(^(s.acked[i/64] >> k)); tz < 64-int(k) {
			return min(i+tz, n)
		}
		i = (i/64 + 1) * 64
	}
	return n
}

// Queue is a disk queue in one directory. Its methods are safe for concurrent use.
type Queue struct {
	dir     string
	opt     Options
	lock    *os.File
	mu      sync.Mutex
	segs    []*segment // oldest first; the last is the active one when active != nil
	active  *os.File   // the last segment, open for appending
	dirty   bool       // appended since the last sync
	readF   *os.File
	readSeg uint64
	nextID  uint64 // the next segment's number: never reused, so never below a saved head
	head    Pos    // persisted acknowledgement head read at Open
	lastAck Pos    // head last written
	stats   Stats
}

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("held by another process (one queue directory per agent: give each its own state directory)")

// Open opens or creates the queue in dir. It scans the newest existing segment (cutting
// a torn record off its end) and starts a new one; older segments are scanned by
// Recover. A directory another process holds is refused.
func Open(dir string, opt Options) (*Queue, error) {
	if opt.MaxBytes <= 0 {
		return nil, fmt.Errorf("disk queue %s: max bytes %d: want more than 0", dir, opt.MaxBytes)
	}
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = min(max(opt.MaxBytes/16, 64<<10), 16<<20)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// On a filesystem smaller than the queue's bound, segments small enough that
	// dropping the oldest makes room when the disk is full.
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) == nil {
		if avail := int64(fs.Bavail) * fs.Bsize; avail > 0 {
			opt.SegmentBytes = min(opt.SegmentBytes, max(avail/8, 64<<10))
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("disk queue %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("disk queue %s: lock: %w", dir, err)
	}
	q := &Queue{dir: dir, opt: opt, lock: lf}
	q.head = q.readAck()
	ents, err := os.ReadDir(dir)
	if err != nil {
		q.Close()
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil || id == 0 {
			continue
		}
		p := filepath.Join(dir, name)
		if id < q.head.Seg {
			_ = os.Remove(p) // acknowledged before the last stop
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		q.segs = append(q.segs, &segment{id: id, path: p, size: fi.Size()})
		q.stats.Bytes += fi.Size()
	}
	sort.Slice(q.segs, func(i, j int) bool { return q.segs[i].id < q.segs[j].id })
	q.nextID = q.head.Seg + 1
	if n := len(q.segs); n > 0 {
		q.nextID = max(q.nextID, q.segs[n-1].id+1)
	}
	if n := len(q.segs); n > 0 {
		q.scanSegment(q.segs[n-1])
		q.stats.PendingRecover = n > 1
	}
	if err := q.newSegment(); err != nil {
		q.Close()
		return nil, err
	}
	for _, s := range append([]*segment(nil), q.segs[:len(q.segs)-1]...) {
		if s.scanned && s.nAcked == s.records() {
			q.removeSegment(s)
		}
	}
	q.trim()
	return q, nil
}

// Recover scans the segments left from before Open, checking every record. Read does
// not reach them before it has run.
func (q *Queue) Recover() {
	for {
		q.mu.Lock()
		var s *segment
		for _, c := range q.segs {
			if !c.scanned {
				s = c
				break
			}
		}
		if s == nil {
			q.stats.PendingRecover = false
			q.mu.Unlock()
			return
		}
		// Scanning reads the file: done without the lock would let Append go on, but
		// the segment's fields are the queue's; a 16 MiB scan holds it for milliseconds.
		q.scanSegment(s)
		q.mu.Unlock()
	}
}

// scanSegment reads s's records, checking each, and truncates what follows the last
// whole record. Called with q.mu held (or before the queue is shared).
func (q *Queue) scanSegment(s *segment) {
	s.scanned = true
	s.offsets, s.acked, s.lines, s.nAcked, s.ackedLn = nil, nil, 0, 0, 0
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		q.corrupt(1, s.size)
		q.removeSegment(s)
		return
	}
	defer f.Close()
	hdr := make([]byte, fileHdrSize)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[:4]) != fileHeader[:4] {
		// Not a segment of this version: set it aside rather than delete what a
		// newer agent may read.
		q.corrupt(1, s.size)
		_ = os.Rename(s.path, s.path+".unreadable")
		q.removeSegment(s)
		return
	}
	r := &countingReader{r: bufio.NewReaderSize(f, 1<<20), off: fileHdrSize}
	buf := make([]byte, 0, 64<<10)
	end := fileHdrSize
	headValid := true // indices after damage may not be the writer's: the saved head stops applying
	for end < s.size && end < math.MaxUint32 {
		h, _, err := readRecord(r, s.size-end, &buf)
		if err != nil {
			// Torn, or damaged: find the next whole record, if any (a flipped bit in
			// a length would otherwise cost the rest of the segment).
			next := resync(f, end+1, s.size)
			if next < 0 {
				break
			}
			q.corrupt(1, next-end)
			headValid = false
			if _, err := f.Seek(next, io.SeekStart); err != nil {
				break
			}
			r = &countingReader{r: bufio.NewReaderSize(f, 1<<20), off: next}
			end = next
			continue
		}
		idx := len(s.offsets)
		s.offsets = append(s.offsets, uint32(end))
		s.grow()
		if s.first.IsZero() {
			s.first = time.Unix(0, h.time)
		}
		s.lines += int64(h.lines)
		if headValid && s.id == q.head.Seg && uint32(idx) < q.head.Idx {
			s.setAcked(idx)
			s.ackedLn += int64(h.lines)
		}
		end = r.off
	}
	if end < s.size {
		q.corrupt(1, s.size-end)
		if err := f.Truncate(end); err == nil {
			q.stats.Bytes -= s.size - end
			s.size = end
		}
	}
	if s.nAcked == s.records() && s.id < q.maxID() {
		q.removeSegment(s)
	}
}

func (q *Queue) maxID() uint64 {
	if len(q.segs) == 0 {
		return 0
	}
	return q.segs[len(q.segs)-1].id
}

func (q *Queue) corrupt(records, bytes int64) {
	q.stats.Corrupt += uint64(records)
	q.stats.CorruptBytes += uint64(bytes)
}

type recHdr struct {
	lines uint32
	time  int64
}

var (
	errTorn     = errors.New("torn record")
	errChecksum = errors.New("checksum mismatch")
)

type offsetReader struct {
	r   io.ReaderAt
	off int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.ReadAt(p, o.off)
	o.off += int64(n)
	if n == len(p) {
		err = nil
	}
	return n, err
}

type countingReader struct {
	r   io.Reader
	off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.off += int64(n)
	return n, err
}

// readRecord reads one record from r, with at most avail bytes left in the segment.
// errTorn: no whole, plausible record follows; errChecksum: a whole record whose
// checksum is wrong.
func readRecord(r io.Reader, avail int64, buf *[]byte) (recHdr, []byte, error) {
	var hb [recHdrSize]byte
	if avail < recHdrSize {
		return recHdr{}, nil, errTorn
	}
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return recHdr{}, nil, errTorn
	}
	n, h, ok := plausible(hb[:], avail)
	if !ok {
		return recHdr{}, nil, errTorn
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	data := (*buf)[:n]
	if _, err := io.ReadFull(r, data); err != nil {
		return recHdr{}, nil, errTorn
	}
	crc := crc32.Update(crc32.Checksum(hb[4:], castagnoli), castagnoli, data)
	if crc != binary.LittleEndian.Uint32(hb[0:4]) {
		return h, data, errChecksum
	}
	return h, data, nil
}

// plausible reads a record header: the payload length, and whether the header can be
// one written by Append with at most avail bytes left (each line takes a byte at least).
func plausible(hb []byte, avail int64) (int64, recHdr, bool) {
	n := int64(binary.LittleEndian.Uint32(hb[4:8]))
	h := recHdr{lines: binary.LittleEndian.Uint32(hb[8:12]), time: int64(binary.LittleEndian.Uint64(hb[12:20]))}
	return n, h, n <= maxRecordLen && recHdrSize+n <= avail && int64(h.lines) <= n && h.lines > 0
}

// resyncBudget bounds the checksum work of one search for the next whole record.
const resyncBudget = 256 << 20

// resync returns the offset of the first whole record with a good checksum in f at or
// after from, or -1.
func resync(f *os.File, from, size int64) int64 {
	if size-from < recHdrSize || size-from > 2*maxRecordLen {
		return -1
	}
	b := make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil {
		return -1
	}
	work := 0
	for i := 0; i+recHdrSize <= len(b) && work < resyncBudget; i++ {
		n, _, ok := plausible(b[i:i+recHdrSize], int64(len(b)-i))
		if !ok {
			continue
		}
		work += int(n)
		if crc32.Checksum(b[i+4:i+recHdrSize+int(n)], castagnoli) == binary.LittleEndian.Uint32(b[i:i+4]) {
			return from + int64(i)
		}
	}
	return -1
}

func (q *Queue) newSegment() error {
	id := q.nextID
	p := filepath.Join(q.dir, fmt.Sprintf("%016x%s", id, segSuffix))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(fileHeader)); err != nil {
		f.Close()
		_ = os.Remove(p)
		return err
	}
	q.nextID++
	q.segs = append(q.segs, &segment{id: id, path: p, size: fileHdrSize, scanned: true})
	q.active = f
	q.stats.Bytes += fileHdrSize
	return nil
}

// Append writes a record of lines lines. The data reaches the operating system before
// Append returns (it survives the agent being killed) and the disk at the next Sync.
// On a full disk the oldest segments make room (counted in DroppedDisk); an error
// means the record is not in the queue.
func (q *Queue) Append(data []byte, lines int, t time.Time) (Pos, error) {
	if len(data) > maxRecordLen || lines < 1 || lines > len(data) {
		return Pos{}, fmt.Errorf("record of %d bytes and %d lines: want 1 to %d bytes and 1 line to one a byte", len(data), lines, maxRecordLen)
	}
	rec := make([]byte, recHdrSize+len(data))
	binary.LittleEndian.PutUint32(rec[4:8], uint32(len(data)))
	binary.LittleEndian.PutUint32(rec[8:12], uint32(lines))
	binary.LittleEndian.PutUint64(rec[12:20], uint64(t.UnixNano()))
	copy(rec[recHdrSize:], data)
	binary.LittleEndian.PutUint32(rec[0:4], crc32.Checksum(rec[4:], castagnoli))

	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		pos, err := q.write(rec, lines, t)
		if err == nil {
			q.trim()
			return pos, nil
		}
		if !errors.Is(err, syscall.ENOSPC) || !q.dropOldest(true) {
			return Pos{}, err
		}
	}
}

func (q *Queue) write(rec []byte, lines int, t time.Time) (Pos, error) {
	if q.active == nil {
		if err := q.newSegment(); err != nil {
			return Pos{}, err
		}
	}
	s := q.segs[len(q.segs)-1]
	if s.size > fileHdrSize && s.size+int64(len(rec)) > q.opt.SegmentBytes {
		if err := q.seal(); err != nil {
			return Pos{}, err
		}
		return q.write(rec, lines, t)
	}
	if _, err := q.active.Write(rec); err != nil {
		// A part may have been written: cut it off so the file ends on a whole record.
		if terr := q.active.Truncate(s.size); terr != nil {
			_ = q.seal()
		} else {
			_, _ = q.active.Seek(s.size, io.SeekStart)
		}
		return Pos{}, err
	}
	idx := len(s.offsets)
	s.offsets = append(s.offsets, uint32(s.size))
	s.grow()
	s.size += int64(len(rec))
	s.lines += int64(lines)
	if idx == 0 {
		s.first = t
	}
	q.stats.Bytes += int64(len(rec))
	q.dirty = true
	return Pos{Seg: s.id, Idx: uint32(idx)}, nil
}

// seal syncs and closes the active segment; the next write starts a new one.
func (q *Queue) seal() error {
	if q.active == nil {
		return nil
	}
	err := q.active.Sync()
	q.active.Close()
	q.active = nil
	q.dirty = false
	if s := q.segs[len(q.segs)-1]; s.nAcked == s.records() {
		q.removeSegment(s)
	}
	return err
}

// trim drops the oldest segments while the queue is over MaxBytes.
func (q *Queue) trim() {
	for q.stats.Bytes > q.opt.MaxBytes && q.dropOldest(false) {
	}
}

// dropOldest deletes the oldest segment that is not the active one, counting its
// unacknowledged lines; false if there is none.
func (q *Queue) dropOldest(diskFull bool) bool {
	if len(q.segs) < 2 && q.active != nil || len(q.segs) == 0 {
		return false
	}
	s := q.segs[0]
	if !s.scanned {
		q.scanSegment(s)
		if len(q.segs) == 0 || q.segs[0] != s {
			return true // the scan found it unreadable and removed it
		}
	}
	lost := uint64(max(s.lines-s.ackedLn-s.inflt, 0))
	if diskFull {
		q.stats.DroppedDisk += lost
	} else {
		q.stats.Dropped += lost
	}
	q.removeSegment(s)
	return true
}

func (q *Queue) removeSegment(s *segment) {
	for i, c := range q.segs {
		if c == s {
			if i == len(q.segs)-1 && q.active != nil {
				q.active.Close()
				q.active = nil
			}
			q.segs = append(q.segs[:i], q.segs[i+1:]...)
			break
		}
	}
	if q.readSeg == s.id && q.readF != nil {
		q.readF.Close()
		q.readF = nil
	}
	q.stats.Bytes -= s.size
	_ = os.Remove(s.path)
}

// Read returns unacknowledged records in append order, from the oldest, up to about
// maxLines lines (at least one record), stopping before the record at before (a zero
// before: no limit). Records handed out are not handed out again unless the queue is
// reopened; each must be acknowledged. Segments Recover has not scanned are not read.
func (q *Queue) Read(maxLines int, before Pos) ([]Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Record
	lines := 0
	for _, s := range q.segs {
		if !s.scanned {
			break
		}
		for {
			s.cursor = s.firstUnacked(s.cursor)
			if s.cursor >= s.records() {
				break
			}
			p := Pos{Seg: s.id, Idx: uint32(s.cursor)}
			if before != (Pos{}) && !p.Less(before) {
				return out, nil
			}
			end := s.size
			if s.cursor+1 < s.records() {
				end = int64(s.offsets[s.cursor+1])
			}
			data, h, err := q.readAt(s, int64(s.offsets[s.cursor]), end)
			idx := s.cursor
			s.cursor++
			if err != nil {
				// Unreadable now although the scan or the write found it whole: a
				// failing disk. Counted, passed over.
				q.corrupt(1, end-int64(s.offsets[idx]))
				s.setAcked(idx)
				continue
			}
			if len(out) > 0 && lines+int(h.lines) > maxLines {
				s.cursor--
				return out, nil
			}
			s.inflt += int64(h.lines)
			lines += int(h.lines)
			out = append(out, Record{Pos: p, Lines: int(h.lines), Time: time.Unix(0, h.time), Data: data})
			if lines >= maxLines {
				return out, nil
			}
		}
	}
	return out, nil
}

func (q *Queue) readAt(s *segment, off, end int64) ([]byte, recHdr, error) {
	if q.readF == nil || q.readSeg != s.id {
		if q.readF != nil {
			q.readF.Close()
			q.readF = nil
		}
		f, err := os.Open(s.path)
		if err != nil {
			return nil, recHdr{}, err
		}
		q.readF, q.readSeg = f, s.id
	}
	var buf []byte
	r := &offsetReader{r: q.readF, off: off}
	h, data, err := readRecord(r, end-off, &buf)
	return data, h, err
}

// Ack marks the record at p finished with (written, or rejected and counted); lines is
// its line count. A segment whose records are all acknowledged is deleted, unless it is
// the one being appended to. Acknowledging a record of a deleted segment does nothing.
func (q *Queue) Ack(p Pos, lines int, handedOut bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].id >= p.Seg })
	if i == len(q.segs) || q.segs[i].id != p.Seg {
		return
	}
	s := q.segs[i]
	if int(p.Idx) >= s.records() {
		return
	}
	if handedOut {
		s.inflt -= int64(lines)
	}
	if !s.setAcked(int(p.Idx)) {
		return
	}
	s.ackedLn += int64(lines)
	if s.nAcked == s.records() && (q.active == nil || i < len(q.segs)-1) {
		q.removeSegment(s)
	}
}

// Sync writes what was appended to the disk and saves the acknowledgement head.
func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var err error
	if q.dirty && q.active != nil {
		err = q.active.Sync()
		q.dirty = false
	}
	head := q.headLocked()
	if head != q.lastAck {
		if werr := q.writeAck(head); werr != nil && err == nil {
			err = werr
		} else if werr == nil {
			q.lastAck = head
		}
	}
	return err
}

// headLocked is the position of the first unacknowledged record, or the next to be
// appended.
func (q *Queue) headLocked() Pos {
	for _, s := range q.segs {
		if !s.scanned {
			if s.id == q.head.Seg {
				return q.head
			}
			return Pos{Seg: s.id}
		}
		if i := s.firstUnacked(0); i < s.records() {
			return Pos{Seg: s.id, Idx: uint32(i)}
		}
	}
	if n := len(q.segs); n > 0 {
		s := q.segs[n-1]
		return Pos{Seg: s.id, Idx: uint32(s.records())}
	}
	return Pos{}
}

func (q *Queue) writeAck(p Pos) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:8], p.Seg)
	binary.LittleEndian.PutUint32(b[8:12], p.Idx)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	tmp := filepath.Join(q.dir, ackFile+".tmp")
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(q.dir, ackFile))
}

func (q *Queue) readAck() Pos {
	b, err := os.ReadFile(filepath.Join(q.dir, ackFile))
	if err != nil {
		return Pos{}
	}
	if len(b) != 16 || crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		q.corrupt(1, int64(len(b))) // everything is sent again: duplicates, not losses
		return Pos{}
	}
	return Pos{Seg: binary.LittleEndian.Uint64(b[0:8]), Idx: binary.LittleEndian.Uint32(b[8:12])}
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.stats
	st.Segments = len(q.segs)
	for _, s := range q.segs {
		if un := s.lines - s.ackedLn; un > 0 {
			st.Lines += un
			if st.Oldest.IsZero() {
				st.Oldest = s.first
			}
		}
	}
	return st
}

// Close syncs and closes the queue; what it holds is there at the next Open.
func (q *Queue) Close() error {
	err := q.Sync()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.active != nil {
		q.active.Close()
		q.active = nil
	}
	if q.readF != nil {
		q.readF.Close()
		q.readF = nil
	}
	if q.lock != nil {
		q.lock.Close()
		q.lock = nil
	}
	return err
}
