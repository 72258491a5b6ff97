package logs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// FuzzStream: the logs API's byte stream is Docker's framing of what a container prints
// (with a TTY, the container's raw output). The stream reader and the assembler behind it
// never panic, never allocate for a frame length they have not got the bytes of, and on
// every stream: each frame is one message or one bad message, as a plain frame walker
// reads it (itself checked against moby's stdcopy, the reference demultiplexer); pieces
// are joined per stream into the records a reference join makes (multiline too), capped
// at the maximum size with the truncation counted; positions never go back. Seeds:
// testdata/fuzz/FuzzStream/.
func FuzzStream(f *testing.F) {
	ml := regexp.MustCompile(`^\S`)
	f.Fuzz(func(t *testing.T, data []byte, tty bool, maxSize uint16, multiline bool) {
		type outcome struct {
			m   message
			bad bool
		}
		var got []outcome
		var pattern *regexp.Regexp
		if multiline {
			pattern = ml
		}
		maxRec := 1 + int(maxSize)%4096
		var recs []Record
		a := newAssembler(maxRec, pattern, func(r Record) { r.Log = bytes.Clone(r.Log); recs = append(recs, r) })
		sr := newStreamReader(bytes.NewReader(data), tty, Position{})
		for calls := 0; ; calls++ {
			if calls > len(data) {
				t.Fatalf("%d messages out of %d bytes: the reader does not advance", calls, len(data))
			}
			ready := sr.ready()
			m, err := sr.next()
			if ready && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("ready, then %v", err)
			}
			if errors.Is(err, errBadMessage) {
				got = append(got, outcome{bad: true})
				continue
			}
			if err != nil {
				break
			}
			if m.stream != "stdout" && m.stream != "stderr" {
				t.Fatalf("message on stream %q", m.stream)
			}
			if m.after.before(m.before) {
				t.Fatalf("position went back: %+v after %+v", m.after, m.before)
			}
			m.line = bytes.Clone(m.line) // a TTY's line is overwritten by the next call
			got = append(got, outcome{m: m})
			a.add(m)
			if c := a.committed(); a.last.before(c) {
				t.Fatalf("committed %+v past the last message %+v", c, a.last)
			}
		}
		a.flush(true)
		if cap(sr.slab) > max(slabSize, len(data)) {
			t.Fatalf("slab of %d bytes for %d bytes of input", cap(sr.slab), len(data))
		}

		var msgs []message
		if tty {
			for _, o := range got {
				if !o.bad {
					if len(o.m.line) > dockerPartialSize {
						t.Fatalf("a TTY message of %d bytes", len(o.m.line))
					}
					msgs = append(msgs, o.m)
				}
			}
		} else {
			frames := walkFrames(t, data)
			if len(got) < len(frames) {
				t.Fatalf("%d outcomes for %d whole frames", len(got), len(frames))
			}
			for i, fr := range frames {
				want, bad := frameMessage(fr)
				if bad != got[i].bad {
					t.Fatalf("frame %d (%d %q): bad message %v, want %v", i, fr.stream, fr.payload, got[i].bad, bad)
				}
				if bad {
					continue
				}
				g := got[i].m
				if g.stream != want.stream || !g.ts.Equal(want.ts) || !bytes.Equal(g.line, want.line) || g.partial != want.partial {
					t.Fatalf("frame %d %q: message %s %v %q partial %v, want %s %v %q partial %v", i, fr.payload,
						g.stream, g.ts, g.line, g.partial, want.stream, want.ts, want.line, want.partial)
				}
				msgs = append(msgs, g)
			}
			for _, o := range got[len(frames):] {
				if !o.bad { // only bad messages after the whole frames (a frame of a length above maxFrame)
					t.Fatalf("a message after the last whole frame: %+v", o.m)
				}
			}
		}

		want := joinRecords(msgs, maxRec, pattern)
		if len(recs) != len(want) {
			t.Fatalf("%d records, want %d: %+v, want %+v", len(recs), len(want), recs, want)
		}
		for i, r := range recs {
			w := want[i]
			if r.Source != w.Source || !bytes.Equal(r.Log, w.Log) || r.Truncated != w.Truncated || !r.Time.Equal(w.Time) {
				t.Fatalf("record %d: %s %q truncated %d %v, want %s %q truncated %d %v", i, r.Source, r.Log, r.Truncated, r.Time,
					w.Source, w.Log, w.Truncated, w.Time)
			}
			if i > 0 && r.Pos.before(recs[i-1].Pos) {
				t.Fatalf("record %d's position %+v before the previous one's %+v", i, r.Pos, recs[i-1].Pos)
			}
		}
	})
}

type rawFrame struct {
	stream  byte
	payload []byte
}

// walkFrames reads the whole frames of data, up to a daemon error (stream 3, which ends
// the stream) or a frame cut short, and checks them against stdcopy.StdCopy up to the
// first of a stream it does not know (it stops there): the same bytes on each output.
func walkFrames(t *testing.T, data []byte) []rawFrame {
	var frames []rawFrame
	var out, errOut bytes.Buffer
	rest, known := data, -1 // known: the bytes stdcopy reads
	for len(rest) >= 8 {
		n := int64(binary.BigEndian.Uint32(rest[4:8]))
		if n > int64(len(rest)-8) {
			break
		}
		fr := rawFrame{stream: rest[0], payload: rest[8 : 8+n]}
		if fr.stream > 3 && known < 0 {
			known = len(data) - len(rest)
		}
		rest = rest[8+n:]
		if fr.stream == 3 {
			break // ends the stream: no outcome
		}
		frames = append(frames, fr)
		if known < 0 {
			if fr.stream == 2 {
				errOut.Write(fr.payload)
			} else {
				out.Write(fr.payload)
			}
		}
	}
	if known < 0 {
		known = len(data) - len(rest)
	}
	// stdcopy reads what the walker read (it would allocate a frame's claimed length).
	var refOut, refErr bytes.Buffer
	_, _ = stdcopy.StdCopy(&refOut, &refErr, bytes.NewReader(data[:known]))
	if !bytes.Equal(out.Bytes(), refOut.Bytes()) || !bytes.Equal(errOut.Bytes(), refErr.Bytes()) {
		t.Fatalf("frame walker: stdout %q stderr %q, stdcopy: %q %q", out.Bytes(), errOut.Bytes(), refOut.Bytes(), refErr.Bytes())
	}
	return frames
}

// frameMessage is the message a frame holds by the logs API's format, or bad.
func frameMessage(fr rawFrame) (message, bool) {
	var m message
	switch fr.stream {
	case 1:
		m.stream = "stdout"
	case 2:
		m.stream = "stderr"
	default:
		return m, true
	}
	if len(fr.payload) > maxFrame {
		return m, true
	}
	ts, line, ok := bytes.Cut(fr.payload, []byte(" "))
	if !ok {
		return m, true
	}
	var err error
	if m.ts, err = time.Parse(time.RFC3339Nano, string(ts)); err != nil {
		return m, true
	}
	m.line, m.partial = bytes.CutSuffix(line, []byte("\n"))
	m.partial = !m.partial && len(m.line) >= dockerPartialSize // shorter: the last piece
	return m, false
}

// joinRecords is the reference assembly: per stream, pieces joined up to a whole line;
// with a pattern, lines joined by newlines until one matching it starts the next record;
// each record cut to max bytes, the rest counted.
func joinRecords(msgs []message, max int, pattern *regexp.Regexp) []Record {
	type open struct {
		ts   time.Time
		text []byte
		on   bool
	}
	var out []Record
	emit := func(stream string, ts time.Time, text []byte) {
		r := Record{Time: ts, Source: stream, Log: text}
		if len(text) > max {
			r.Log = append(bytes.Clone(text[:max]), fmt.Sprintf(" [truncated by lookout: %d of %d bytes kept]", max, len(text))...)
			r.Truncated = len(text) - max
		}
		out = append(out, r)
	}
	piece, rec := map[string]*open{"stdout": {}, "stderr": {}}, map[string]*open{"stdout": {}, "stderr": {}}
	for _, m := range msgs {
		p := piece[m.stream]
		if !p.on {
			*p = open{ts: m.ts, on: true}
		}
		p.text = append(p.text, m.line...)
		if m.partial {
			continue
		}
		p.on = false
		if pattern == nil {
			emit(m.stream, p.ts, p.text)
			continue
		}
		r := rec[m.stream]
		if r.on && pattern.Match(p.text) {
			emit(m.stream, r.ts, r.text)
			r.on = false
		}
		if !r.on {
			*r = open{ts: p.ts, text: p.text, on: true}
		} else {
			r.text = append(append(r.text, '\n'), p.text...)
		}
	}
	for _, s := range []string{"stdout", "stderr"} {
		if r := rec[s]; r.on {
			emit(s, r.ts, r.text)
		}
		if p := piece[s]; p.on {
			emit(s, p.ts, p.text)
		}
	}
	return out
}
