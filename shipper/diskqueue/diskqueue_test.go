package diskqueue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func open(t testing.TB, dir string, o Options) *Queue {
	t.Helper()
	q, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func rec(i int) []byte { return []byte(fmt.Sprintf("record %06d\n", i)) }

func appendN(t testing.TB, q *Queue, from, to int) []Pos {
	t.Helper()
	var ps []Pos
	for i := from; i < to; i++ {
		p, err := q.Append(rec(i), 1, time.Unix(int64(i), 0))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// readAll reads the payload of every record the queue hands out, acknowledging each.
func readAll(t testing.TB, q *Queue) []string {
	t.Helper()
	var got []string
	for _, r := range readRecords(t, q) {
		got = append(got, string(r.Data))
	}
	return got
}

// readRecords reads every record the queue hands out, acknowledging each.
func readRecords(t testing.TB, q *Queue) []Record {
	t.Helper()
	var got []Record
	for {
		rs, err := q.Read(100, Pos{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return got
		}
		for _, r := range rs {
			got = append(got, r)
			q.Ack(r.Pos, r.Lines, true)
		}
	}
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(rec(i)))
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d (first got %q)", len(got), len(want), head(got))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func head(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestAppendReadAckAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 1 << 20, SegmentBytes: 256})
	appendN(t, q, 0, 100)
	if st := q.Stats(); st.Lines != 100 || st.Segments < 10 {
		t.Fatalf("stats %+v: want 100 lines over many segments", st)
	}
	equal(t, readAll(t, q), want(0, 100))
	st := q.Stats()
	if st.Lines != 0 || st.Segments != 1 {
		t.Fatalf("after acknowledging all: %+v, want 0 lines and only the active segment", st)
	}
	q.Close()
	q = open(t, dir, Options{MaxBytes: 1 << 20, SegmentBytes: 256})
	defer q.Close()
	q.Recover()
	if got := readAll(t, q); len(got) != 0 {
		t.Fatalf("after reopening, %d acknowledged records handed out again", len(got))
	}
}

func TestReopenResumesAtTheAcknowledgedHead(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 1 << 20, SegmentBytes: 200}
	q := open(t, dir, o)
	appendN(t, q, 0, 50)
	rs, _ := q.Read(20, Pos{})
	for _, r := range rs {
		q.Ack(r.Pos, 1, true)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	// Not closed: as after kill -9 (the data was written to the OS by Append).
	q.lock.Close()
	q2 := open(t, dir, o)
	defer q2.Close()
	q2.Recover()
	equal(t, readAll(t, q2), want(20, 50))
}

func TestOutOfOrderAcksAndBefore(t *testing.T) {
	q := open(t, t.TempDir(), Options{MaxBytes: 1 << 20})
	defer q.Close()
	ps := appendN(t, q, 0, 10)
	// The newest five are sent from memory and acknowledged first.
	for _, p := range ps[5:] {
		q.Ack(p, 1, false)
	}
	rs, _ := q.Read(100, ps[8])
	var got []string
	for _, r := range rs {
		got = append(got, string(r.Data))
	}
	equal(t, got, want(0, 5))
	if rs2, _ := q.Read(100, ps[8]); len(rs2) != 0 {
		t.Fatalf("records handed out twice: %d", len(rs2))
	}
}

func TestFullQueueDropsOldestAndCounts(t *testing.T) {
	q := open(t, t.TempDir(), Options{MaxBytes: 2000, SegmentBytes: 300})
	defer q.Close()
	appendN(t, q, 0, 200)
	st := q.Stats()
	if st.Bytes > 2000+300 {
		t.Fatalf("queue holds %d bytes, bound 2000 (+ one segment)", st.Bytes)
	}
	got := readAll(t, q)
	if int(st.Dropped)+len(got) != 200 {
		t.Fatalf("dropped %d + delivered %d != 200 appended", st.Dropped, len(got))
	}
	if got[len(got)-1] != string(rec(199)) || st.Dropped == 0 {
		t.Fatalf("want the newest kept and the oldest dropped: last %q, dropped %d", got[len(got)-1], st.Dropped)
	}
}

func TestTornTailIsCutAndCounted(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 1 << 20})
	appendN(t, q, 0, 10)
	q.Close()
	seg := segFiles(t, dir)[0]
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-5); err != nil { // the last record torn
		t.Fatal(err)
	}
	q = open(t, dir, Options{MaxBytes: 1 << 20})
	defer q.Close()
	q.Recover()
	equal(t, readAll(t, q), want(0, 9))
	if st := q.Stats(); st.Corrupt != 1 {
		t.Fatalf("corrupt = %d, want 1", st.Corrupt)
	}
	if st, fi := q.Stats(), statAll(t, dir); st.Bytes != fi {
		t.Fatalf("stats say %d bytes, the files hold %d", st.Bytes, fi)
	}
}

// flipAndRecover appends n records in segments of segBytes, xors mask into byte off of
// the first segment, reopens and reads everything.
func flipAndRecover(t *testing.T, n int, segBytes int64, off int, mask byte) ([]string, Stats) {
	t.Helper()
	dir := t.TempDir()
	o := Options{MaxBytes: 1 << 20, SegmentBytes: segBytes}
	q := open(t, dir, o)
	appendN(t, q, 0, n)
	q.Close()
	seg := segFiles(t, dir)[0] // an older segment: scanned by Recover
	b, _ := os.ReadFile(seg)
	b[off] ^= mask
	_ = os.WriteFile(seg, b, 0o600)
	q = open(t, dir, o)
	defer q.Close()
	q.Recover()
	return readAll(t, q), q.Stats()
}

func TestFlippedBitSkipsOneRecord(t *testing.T) {
	off := int(fileHdrSize) + 3*(recHdrSize+len(rec(0))) + recHdrSize + 2 // payload of the 4th record
	got, st := flipAndRecover(t, 100, 1<<10, off, 0x10)
	equal(t, got, append(want(0, 3), want(4, 100)...))
	if st.Corrupt != 1 {
		t.Fatalf("corrupt = %d, want 1", st.Corrupt)
	}
}

// A flipped bit in a record's length misaligns what follows: the scan finds the next
// whole record instead of giving up the rest of the segment.
func TestFlippedLengthBitLosesOneRecord(t *testing.T) {
	off := int(fileHdrSize) + 10*(recHdrSize+len(rec(0))) + 4 // length of the 11th record
	got, st := flipAndRecover(t, 1000, 64<<10, off, 0x04)
	equal(t, got, append(want(0, 10), want(11, 1000)...))
	if st.Corrupt != 1 {
		t.Fatalf("corrupt = %d, want 1", st.Corrupt)
	}
}

func TestForeignFileSetAsideAndCounted(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 1 << 20, SegmentBytes: 1 << 10}
	q := open(t, dir, o)
	appendN(t, q, 0, 100)
	q.Close()
	segs := segFiles(t, dir)
	_ = os.WriteFile(segs[0], []byte("a file from another program or version"), 0o600)
	q = open(t, dir, o)
	defer q.Close()
	q.Recover()
	got := readAll(t, q)
	if len(got) == 0 || got[len(got)-1] != string(rec(99)) {
		t.Fatalf("the other segments were not delivered: %d records", len(got))
	}
	if st := q.Stats(); st.Corrupt != 1 || st.Bytes != statAll(t, dir) {
		t.Fatalf("corrupt = %d, want 1; bytes %d, the files hold %d", st.Corrupt, st.Bytes, statAll(t, dir))
	}
	if _, err := os.Stat(segs[0] + ".unreadable"); err != nil {
		t.Fatalf("the foreign file was not set aside: %v", err)
	}
}

func TestAppendAfterCloseIsRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 1 << 20})
	q.Close()
	if _, err := q.Append(rec(0), 1, time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files, want the one from Open", n)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, Options{MaxBytes: 1 << 20})
	defer q.Close()
	if _, err := Open(dir, Options{MaxBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestSegmentNumbersNeverGoBelowTheSavedHead(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 1 << 20, SegmentBytes: 100}
	q := open(t, dir, o)
	appendN(t, q, 0, 20)
	readAll(t, q)
	q.Close()
	// Every segment acknowledged and gone: a new one must still come after the head.
	q = open(t, dir, o)
	appendN(t, q, 20, 25)
	q.lock.Close() // killed
	q = open(t, dir, o)
	defer q.Close()
	q.Recover()
	equal(t, readAll(t, q), want(20, 25))
}

func TestFirstUnacked(t *testing.T) {
	s := &segment{offsets: make([]uint32, 200)}
	s.grow()
	for _, i := range []int{0, 1, 2, 63, 64, 65, 127, 128} {
		s.setAcked(i)
	}
	cases := map[int]int{0: 3, 3: 3, 60: 60, 63: 66, 64: 66, 127: 129, 199: 199}
	for from, w := range cases {
		if got := s.firstUnacked(from); got != w {
			t.Errorf("firstUnacked(%d) = %d, want %d", from, got, w)
		}
	}
	for i := range 200 {
		s.setAcked(i)
	}
	if got := s.firstUnacked(0); got != 200 {
		t.Errorf("all acknowledged: firstUnacked = %d, want 200", got)
	}
}

// statAll is the size of the segment files in dir.
func statAll(t testing.TB, dir string) int64 {
	var n int64
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	sort.Strings(m)
	return m
}

// FuzzRecover damages a queue's files with the fuzzer's bytes (xored in at offsets it
// picks, or cut short) and reopens it: no panic, no error, and every record handed out
// is one that was appended, intact.
func FuzzRecover(f *testing.F) {
	f.Add([]byte{0, 5, 0xff}, uint16(0))
	f.Add([]byte{1, 40, 0x01, 2, 200, 0x80}, uint16(7))
	f.Add([]byte{}, uint16(300))
	f.Fuzz(func(t *testing.T, damage []byte, cut uint16) {
		dir := t.TempDir()
		o := Options{MaxBytes: 1 << 20, SegmentBytes: 512}
		q := open(t, dir, o)
		appendN(t, q, 0, 60)
		q.Close()
		segs := segFiles(t, dir)
		for i := 0; i+2 < len(damage); i += 3 {
			p := segs[int(damage[i])%len(segs)]
			b, _ := os.ReadFile(p)
			if len(b) == 0 {
				continue
			}
			b[int(damage[i+1])*7%len(b)] ^= damage[i+2]
			_ = os.WriteFile(p, b, 0o600)
		}
		if cut > 0 {
			p := segs[int(cut)%len(segs)]
			if fi, err := os.Stat(p); err == nil && fi.Size() > int64(cut%64) {
				_ = os.Truncate(p, fi.Size()-int64(cut%64))
			}
		}
		q, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q.Recover()
		valid := map[string]bool{}
		for i := range 60 {
			valid[string(rec(i))] = true
		}
		seen := map[string]bool{}
		for _, r := range readAll(t, q) {
			if !valid[r] || seen[r] {
				t.Fatalf("handed out a record never appended, or twice: %q", r)
			}
			seen[r] = true
		}
	})
}

// FuzzRecords: a queue's files are the agent's own, but they survive crashes, disks
// and other versions, so every byte of them is read as untrusted. The fuzzer writes a
// whole segment (after a good file header, or its own) and the head's file; Open and
// Recover never panic or fail, and Read hands out exactly the records a plain reference
// scan finds (each whole, plausible and with a good checksum, resuming one byte further
// after anything else), less those before a saved head that still applies; every byte
// of the segment is a record handed out, the file header or counted as corrupt.
func FuzzRecords(f *testing.F) {
	f.Fuzz(func(t *testing.T, seg []byte, ownHeader, fixCRC bool, head []byte) {
		dir := t.TempDir()
		file := bytes.Clone(seg)
		if !ownHeader {
			file = append([]byte(fileHeader), seg...)
		}
		if fixCRC { // the checksums the writer would have put, at the places its lengths say
			for off := len(fileHeader); off+recHdrSize <= len(file); {
				n := int(binary.LittleEndian.Uint32(file[off+4 : off+8]))
				if n > len(file)-off-recHdrSize {
					break
				}
				binary.LittleEndian.PutUint32(file[off:], crc32.Checksum(file[off+4:off+recHdrSize+n], castagnoli))
				off += recHdrSize + n
			}
		}
		if len(head) == 12 { // a head with a good checksum
			head = binary.LittleEndian.AppendUint32(bytes.Clone(head), crc32.Checksum(head, castagnoli))
		}
		const id = 5
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", id, segSuffix)), file, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(head) > 0 {
			if err := os.WriteFile(filepath.Join(dir, ackFile), head, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		q, err := Open(dir, Options{MaxBytes: 1 << 30, SegmentBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q.Recover()
		got := readRecords(t, q)

		// The reference: the saved head, then a scan of the segment.
		var h Pos
		headOK := len(head) == 16 && crc32.Checksum(head[:12], castagnoli) == binary.LittleEndian.Uint32(head[12:])
		if headOK {
			h = Pos{Seg: binary.LittleEndian.Uint64(head[0:8]), Idx: binary.LittleEndian.Uint32(head[8:12])}
		}
		var want []Record
		good := 0 // bytes of whole records
		if len(file) >= len(fileHeader) && string(file[:4]) == fileHeader[:4] && h.Seg <= id {
			damaged := false
			for off := len(fileHeader); off+recHdrSize <= len(file); {
				b := file[off:]
				n := int(binary.LittleEndian.Uint32(b[4:8]))
				lines := binary.LittleEndian.Uint32(b[8:12])
				if n > maxRecordLen || recHdrSize+n > len(b) || lines == 0 || int(lines) > n ||
					crc32.Checksum(b[4:recHdrSize+n], castagnoli) != binary.LittleEndian.Uint32(b[0:4]) {
					damaged = true
					off++
					continue
				}
				idx := uint32(len(want))
				want = append(want, Record{Pos: Pos{Seg: id, Idx: idx}, Lines: int(lines),
					Time: time.Unix(0, int64(binary.LittleEndian.Uint64(b[12:20]))), Data: b[recHdrSize : recHdrSize+n]})
				if h.Seg == id && idx < h.Idx && !damaged {
					want = want[:len(want)-1]
					want = append(want, Record{Pos: Pos{Seg: id, Idx: idx}}) // acknowledged: not handed out
				}
				good += recHdrSize + n
				off += recHdrSize + n
			}
		} else {
			want = nil
		}
		var handed []Record
		for _, r := range want {
			if r.Data != nil {
				handed = append(handed, r)
			}
		}
		if len(got) != len(handed) {
			t.Fatalf("%d records handed out, want %d", len(got), len(handed))
		}
		for i, r := range got {
			w := handed[i]
			if r.Pos != w.Pos || r.Lines != w.Lines || !r.Time.Equal(w.Time) || !bytes.Equal(r.Data, w.Data) {
				t.Fatalf("record %d: %+v, want %+v", i, r, w)
			}
		}
		st := q.Stats()
		headBytes := uint64(0)
		if len(head) > 0 && !headOK {
			headBytes = uint64(len(head)) // a damaged head file is counted too
		}
		wantCorrupt := uint64(0)
		switch {
		case h.Seg > id: // acknowledged before the last stop: deleted unread
		case len(file) >= len(fileHeader) && string(file[:4]) == fileHeader[:4]:
			wantCorrupt = uint64(len(file) - len(fileHeader) - good)
		default: // not a segment: set aside whole
			wantCorrupt = uint64(len(file))
		}
		if st.CorruptBytes-headBytes != wantCorrupt {
			t.Fatalf("%d bytes counted corrupt, want %d (%d of whole records)", st.CorruptBytes-headBytes, wantCorrupt, good)
		}
	})
}
