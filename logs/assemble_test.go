package logs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func frame(stream byte, ts time.Time, content string) []byte {
	p := ts.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " " + content
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	return append(h, p...)
}

// collect reads a stream through the reader and the assembler.
func collect(t *testing.T, data []byte, tty bool, maxSize int, ml *regexp.Regexp) []Record {
	t.Helper()
	var out []Record
	a := newAssembler(maxSize, ml, func(r Record) { r.Log = bytes.Clone(r.Log); out = append(out, r) })
	sr := newStreamReader(bytes.NewReader(data), tty, Position{})
	for {
		m, err := sr.next()
		if err != nil {
			break
		}
		m.line = bytes.Clone(m.line)
		a.add(m)
	}
	a.flush(true)
	return out
}

func TestJoinPiecesPerStream(t *testing.T) {
	t0 := time.Unix(1700000000, 123456789)
	piece := strings.Repeat("a", dockerPartialSize)
	var s []byte
	s = append(s, frame(1, t0, piece)...)               // stdout piece 1
	s = append(s, frame(2, t0.Add(1), "err line\n")...) // stderr complete, between pieces
	s = append(s, frame(1, t0, piece)...)               // stdout piece 2 (same time, as Docker stamps it)
	s = append(s, frame(1, t0, "end\n")...)             // stdout last piece
	s = append(s, frame(1, t0.Add(2), "\n")...)         // empty line
	recs := collect(t, s, false, 1<<20, nil)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	if recs[0].Source != "stderr" || string(recs[0].Log) != "err line" {
		t.Errorf("first record %q %q", recs[0].Source, recs[0].Log)
	}
	// The stderr record must not cover the stdout piece before it.
	if want := (Position{}); recs[0].Pos != want {
		t.Errorf("stderr record position %+v, want %+v: a pending piece comes before it", recs[0].Pos, want)
	}
	if string(recs[1].Log) != piece+piece+"end" || recs[1].Source != "stdout" || !recs[1].Time.Equal(t0) {
		t.Errorf("joined record: %d bytes, source %s, time %s", len(recs[1].Log), recs[1].Source, recs[1].Time)
	}
	if want := (Position{TimeNS: t0.UnixNano(), N: 3}); recs[1].Pos.TimeNS != t0.Add(1).UnixNano() || recs[1].Pos.N != 1 {
		t.Errorf("joined record position %+v, want after the stderr line (not %+v)", recs[1].Pos, want)
	}
	if string(recs[2].Log) != "" || recs[2].Pos != (Position{TimeNS: t0.Add(2).UnixNano(), N: 1}) {
		t.Errorf("empty line record %q at %+v", recs[2].Log, recs[2].Pos)
	}
}

// TestLastPieceWithoutNewline: Docker 20.10's local driver sends the last piece of a long
// line without its newline, as the logs API shows it (a line of exactly 48 KiB ends in an
// empty piece). The line ends there all the same: the line after it is a record of its own,
// not joined to the long one, and the position of the long line's record covers its last piece.
func TestLastPieceWithoutNewline(t *testing.T) {
	t0 := time.Unix(1700000000, 42)
	piece := strings.Repeat("x", dockerPartialSize)
	for _, last := range []string{"", "tail"} {
		var s []byte
		s = append(s, frame(1, t0, "big start\n")...)
		t1 := t0.Add(1)
		for range 3 {
			s = append(s, frame(1, t1, piece)...)
		}
		s = append(s, frame(1, t1, last)...) // the last piece, its newline missing
		s = append(s, frame(1, t0.Add(2), "after 1\n")...)
		s = append(s, frame(1, t0.Add(3), "after 2\n")...)
		recs := collect(t, s, false, 1<<20, nil)
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%.12s (%d bytes)", r.Log, len(r.Log)))
		}
		if len(recs) != 4 || string(recs[1].Log) != strings.Repeat(piece, 3)+last ||
			string(recs[2].Log) != "after 1" || string(recs[3].Log) != "after 2" {
			t.Fatalf("last piece %q: records %v, want big start, the long line, after 1, after 2", last, got)
		}
		if want := (Position{TimeNS: t1.UnixNano(), N: 4}); recs[1].Pos != want {
			t.Errorf("last piece %q: the long line's position %+v, want %+v", last, recs[1].Pos, want)
		}
	}
}

// TestResumeSkipsOnlyItsTime: reading on from a position skips the messages stamped with
// its time that were passed on before, and never a newer one, even when the log now holds
// fewer messages of that time than were passed on (Docker's rotation removed the start of
// a long line, whose pieces all carry the time of its first).
func TestResumeSkipsOnlyItsTime(t *testing.T) {
	t0 := time.Unix(1700000000, 7)
	piece := strings.Repeat("x", dockerPartialSize)
	var s []byte
	for range 3 { // 5 pieces were passed on; rotation left the last 3
		s = append(s, frame(1, t0, piece)...)
	}
	s = append(s, frame(1, t0, "\n")...)
	s = append(s, frame(1, t0.Add(1), "after 1\n")...)
	s = append(s, frame(1, t0.Add(2), "after 2\n")...)
	for _, from := range []Position{{TimeNS: t0.UnixNano(), N: 6}, {TimeNS: t0.UnixNano(), N: 2}} {
		fl := &follower{f: &Forwarder{}, cnt: &counters{}}
		pos := from
		msgs := make(chan []message, 16)
		n, _, err := fl.readStream(context.Background(), bytes.NewReader(s), &pos, false, msgs)
		close(msgs)
		var got []string
		for g := range msgs {
			for _, m := range g {
				got = append(got, fmt.Sprintf("%.9s", m.line))
			}
		}
		want := []string{"after 1", "after 2"}
		if from.N == 2 {
			want = []string{"xxxxxxxxx", "", "after 1", "after 2"} // the third piece, the last
		}
		if err != io.EOF || n != len(want) || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("from %+v: %d messages %q (%v), want %q", from, n, got, err, want)
		}
		if wantPos := (Position{TimeNS: t0.Add(2).UnixNano(), N: 1}); pos != wantPos {
			t.Errorf("from %+v: position %+v, want %+v", from, pos, wantPos)
		}
	}
}

func TestTruncateMultilineTTY(t *testing.T) {
	t0 := time.Unix(1700000000, 5)
	var s []byte
	for i, l := range []string{"ERROR boom\n", "  at a()\n", "  at b()\n", "INFO ok\n"} {
		s = append(s, frame(1, t0.Add(time.Duration(i)), l)...)
	}
	recs := collect(t, s, false, 1<<20, regexp.MustCompile(`^[A-Z]`))
	if len(recs) != 2 || string(recs[0].Log) != "ERROR boom\n  at a()\n  at b()" || string(recs[1].Log) != "INFO ok" {
		t.Fatalf("multiline records %+v", recs)
	}
	if recs[0].Pos != (Position{TimeNS: t0.Add(2).UnixNano(), N: 1}) {
		t.Errorf("multiline record position %+v: want after its last line, before the next record", recs[0].Pos)
	}

	long := frame(1, t0, strings.Repeat("x", 5000)+"\n")
	recs = collect(t, long, false, 1024, nil)
	if len(recs) != 1 || recs[0].Truncated != 5000-1024 || !strings.HasSuffix(string(recs[0].Log), "[truncated by lookout: 1024 of 5000 bytes kept]") {
		t.Fatalf("truncated record %d bytes, truncated %d: %.80q", len(recs[0].Log), recs[0].Truncated, recs[0].Log)
	}

	ts := t0.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
	tty := fmt.Sprintf("%s one\r\n%s %s%s two\r\n", ts, ts, strings.Repeat("y", dockerPartialSize), ts)
	recs = collect(t, []byte(tty), true, 1<<20, nil)
	if len(recs) != 2 || string(recs[0].Log) != "one" || string(recs[1].Log) != strings.Repeat("y", dockerPartialSize)+"two" {
		t.Fatalf("tty records %d: %+v", len(recs), recs)
	}
}

func TestPositionSince(t *testing.T) {
	p := Position{TimeNS: 1700000000_000000042}
	if p.since() != "1700000000.000000042" || (Position{}).since() != "" {
		t.Errorf("since %q", p.since())
	}
	if !p.before(p.advance(p.TimeNS)) || p.advance(p.TimeNS+1) != (Position{TimeNS: p.TimeNS + 1, N: 1}) {
		t.Error("advance")
	}
	s, err := newStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.load("abc"); ok || err != nil {
		t.Errorf("position before any save: %v, %v", ok, err)
	}
	_ = s.save("abc", Position{TimeNS: 5, N: 2})
	if got, ok, err := s.load("abc"); !ok || err != nil || got != (Position{TimeNS: 5, N: 2}) {
		t.Errorf("load %+v %v %v", got, ok, err)
	}
	// A file left empty (a host crash before the rename reached the disk) is an error,
	// not "no position": the follower must not take the agent's start for it.
	if err := os.WriteFile(s.path("abc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.load("abc"); ok || err == nil {
		t.Errorf("empty position file: ok %v, err %v; want an error", ok, err)
	}
}

// TestLinesStayValid: without a TTY the lines the stream reader returns stay as they were
// while it reads on (they are handed to another goroutine without a copy), across slabs.
func TestLinesStayValid(t *testing.T) {
	var b []byte
	want := []string{}
	t0 := time.Unix(1700000000, 0)
	for i := 0; i < 2000; i++ {
		l := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%200))
		want = append(want, l)
		b = append(b, frame(byte(1+i%2), t0, l+"\n")...)
	}
	sr := newStreamReader(bytes.NewReader(b), false, Position{})
	var got [][]byte
	for {
		m, err := sr.next()
		if err != nil {
			break
		}
		got = append(got, m.line)
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("line %d is %q, want %q", i, got[i], want[i])
		}
	}
}

// A multiline pattern that never matches again, or a stack trace without end: a record
// goes out on reaching the maximum size, and the next line starts another one, so neither
// memory nor the log position is held; every line is in exactly one record.
func TestMultilineRecordBounded(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	var s []byte
	s = append(s, frame(1, t0, "START\n")...)
	for i := range 300 {
		s = append(s, frame(1, t0.Add(time.Duration(i+1)), fmt.Sprintf("  more %03d %s\n", i, strings.Repeat("z", 90)))...)
	}
	// A 100 KiB line cut by Docker, inside the record.
	for range 6 {
		s = append(s, frame(1, t0.Add(400), strings.Repeat("p", dockerPartialSize))...)
	}
	s = append(s, frame(1, t0.Add(400), "end of long\n")...)
	recs := collect(t, s, false, 4096, regexp.MustCompile(`^START`))
	lines, split := 0, 0
	for i, r := range recs {
		if len(r.Log) > 4096+100 {
			t.Fatalf("record %d of %d bytes, above the maximum", i, len(r.Log))
		}
		if r.Split {
			split++
		}
		if r.Truncated == 0 {
			lines += strings.Count(string(r.Log), "  more ")
		}
		if i > 0 && !recs[i-1].Pos.before(r.Pos) {
			t.Errorf("record %d position %+v does not advance from %+v", i, r.Pos, recs[i-1].Pos)
		}
	}
	if split < 7 || lines != 300 || !strings.HasPrefix(string(recs[0].Log), "START\n  more 000") {
		t.Errorf("%d records (%d split), %d continuation lines whole (want 300)", len(recs), split, lines)
	}
	last := recs[len(recs)-1]
	if last.Truncated == 0 || !strings.Contains(string(last.Log), "[truncated by lookout: ") {
		t.Errorf("the 100 KiB line must end truncated: %d bytes truncated, %.60q", last.Truncated, last.Log)
	}
}

// The multiline pattern judges the first 4 KiB of a line.
func TestMultilineWindow(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	var s []byte
	s = append(s, frame(1, t0, "A first\n")...)
	s = append(s, frame(1, t0, strings.Repeat(" ", multilineWindow)+"A not a first line\n")...)
	s = append(s, frame(1, t0, "A second\n")...)
	recs := collect(t, s, false, 1<<20, regexp.MustCompile(`A`))
	if len(recs) != 2 || !strings.HasSuffix(string(recs[0].Log), "A not a first line") {
		t.Fatalf("%d records", len(recs))
	}
}

// The position files of containers the engine no longer has (removed while the agent was
// away: no Gone will come for them) are swept; the others, and files that are not
// positions, stay.
func TestSweepPositionsOfContainersGone(t *testing.T) {
	st, err := newStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"aaa1", "bbb2", "ccc3"} {
		if err := st.save(id, Position{TimeNS: 1, N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(st.dir, "notes.txt")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{store: st}
	n, err := f.SweepPositions(func(id string) bool { return id == "bbb2" })
	if err != nil || n != 2 {
		t.Fatalf("SweepPositions = %d, %v; want 2 files removed", n, err)
	}
	ids, _ := st.ids()
	if len(ids) != 1 || ids[0] != "bbb2" {
		t.Errorf("position files left: %v, want bbb2's", ids)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is no position was touched: %v", err)
	}
}
