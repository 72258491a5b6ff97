package logs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// dockerPartialSize is the size of the pieces Docker's log copier cuts a line into when it
// has no newline in 16 KiB (moby daemon/logger/copier.go).
const dockerPartialSize = 16 * 1024

// maxFrame bounds the payload of one frame of the logs API: a message (16 KiB at most,
// cut by Docker's copier) with its timestamp, with ample room.
const maxFrame = 1 << 20

// message is one Docker log message as the logs API returns it with timestamps on.
type message struct {
	ts      time.Time
	stream  string // "stdout" or "stderr"
	line    []byte // without the trailing newline
	partial bool   // Docker cut the line here; the rest follows in the next message of the stream
	before  Position
	after   Position
}

// streamReader turns the logs API's byte stream into messages: stdcopy frames for a
// container without a terminal (one frame per message), one raw stream for a TTY.
type streamReader struct {
	r   *bufio.Reader
	tty bool
	pos Position
	hdr [8]byte
	buf []byte // a TTY message being read (copied out by the caller)
	// slab holds the lines of frames (no TTY); a line returned stays valid.
	slab []byte
}

func newStreamReader(r io.Reader, tty bool, pos Position) *streamReader {
	return &streamReader{r: bufio.NewReaderSize(r, 64*1024), tty: tty, pos: pos}
}

// errBadMessage is a message that could not be parsed; the reader goes on with the next.
var errBadMessage = errors.New("bad log message")

// next returns the next message; its line stays valid without a TTY, and is overwritten
// by the next call with one (see owned). An error wrapping errBadMessage may be followed by more
// messages; any other error ends the stream.
func (s *streamReader) next() (message, error) {
	var m message
	var payload []byte
	if s.tty {
		ts, err := s.r.ReadSlice(' ')
		if err != nil {
			return m, err
		}
		t, perr := time.Parse(time.RFC3339Nano, string(ts[:len(ts)-1]))
		content, partial, err := s.ttyContent()
		if err != nil {
			return m, err
		}
		if perr != nil {
			return m, fmt.Errorf("%w: timestamp %q", errBadMessage, ts)
		}
		m = message{ts: t, stream: "stdout", line: content, partial: partial}
	} else {
		if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
			return m, err
		}
		n := int(binary.BigEndian.Uint32(s.hdr[4:]))
		if n > maxFrame {
			// Docker's frames hold a message of 16 KiB at most: a length above the
			// bound is no message of the logs API. Passed over unread, never allocated.
			if _, err := io.CopyN(io.Discard, s.r, int64(n)); err != nil {
				return m, err
			}
			return m, fmt.Errorf("%w: frame of %d bytes (at most %d are taken)", errBadMessage, n, maxFrame)
		}
		if n > slabSize {
			// Larger than any message Docker writes: the buffer grows as the bytes
			// arrive, never to the header's word alone.
			b := bytes.NewBuffer(make([]byte, 0, slabSize))
			if _, err := io.CopyN(b, s.r, int64(n)); err != nil {
				return m, err
			}
			payload = b.Bytes()
		} else {
			// The payload is read into the slab, where the message's line stays: handed
			// on without another copy. The slab is only ever appended to.
			if cap(s.slab)-len(s.slab) < n {
				s.slab = make([]byte, 0, slabSize)
			}
			start := len(s.slab)
			s.slab = s.slab[:start+n]
			payload = s.slab[start : start+n : start+n]
			if _, err := io.ReadFull(s.r, payload); err != nil {
				return m, err
			}
		}
		switch s.hdr[0] {
		case 1:
			m.stream = "stdout"
		case 2:
			m.stream = "stderr"
		case 3:
			return m, fmt.Errorf("docker: %s", bytes.TrimSpace(payload))
		default:
			return m, fmt.Errorf("%w: unknown stream %d", errBadMessage, s.hdr[0])
		}
		sp := bytes.IndexByte(payload, ' ')
		if sp < 0 {
			return m, fmt.Errorf("%w: no timestamp", errBadMessage)
		}
		t, err := time.Parse(time.RFC3339Nano, string(payload[:sp]))
		if err != nil {
			return m, fmt.Errorf("%w: timestamp %q", errBadMessage, payload[:sp])
		}
		m.ts = t
		m.line = payload[sp+1:]
		if l := len(m.line); l > 0 && m.line[l-1] == '\n' {
			m.line = m.line[:l-1]
		} else {
			// Docker cuts a piece of a longer line at exactly 16 KiB. A shorter message
			// without a newline ends its line all the same: the last piece of a long line
			// from the local driver (Docker 20.10 drops its newline, and with it the end
			// of the line: taken as a piece, the next line would be joined to it), or what
			// a container left unterminated when its output closed.
			m.partial = len(m.line) >= dockerPartialSize
		}
	}
	m.before = s.pos
	s.pos = s.pos.advance(m.ts.UnixNano())
	m.after = s.pos
	return m, nil
}

// owned says whether the lines returned stay valid after the next call.
func (s *streamReader) owned() bool { return !s.tty }

// ready says whether the next message is whole in the read buffer, so that next returns
// it without waiting for more input.
func (s *streamReader) ready() bool {
	b, _ := s.r.Peek(s.r.Buffered())
	if s.tty {
		// A timestamp and its space, then a newline or a whole 16 KiB piece.
		sp := bytes.IndexByte(b, ' ')
		return sp >= 0 && (bytes.IndexByte(b[sp+1:], '\n') >= 0 || len(b)-sp-1 >= dockerPartialSize)
	}
	return len(b) >= 8 && len(b)-8 >= int(binary.BigEndian.Uint32(b[4:8]))
}

// ttyContent reads a TTY message after its timestamp: up to and including a newline
// within the next 16 KiB, or, without one, exactly 16 KiB: a piece of a longer line.
func (s *streamReader) ttyContent() ([]byte, bool, error) {
	s.buf = s.buf[:0]
	for len(s.buf) < dockerPartialSize {
		if s.r.Buffered() == 0 {
			if _, err := s.r.Peek(1); err != nil {
				if err == io.EOF && len(s.buf) > 0 {
					return s.buf, true, nil
				}
				return nil, false, err
			}
		}
		b, _ := s.r.Peek(min(s.r.Buffered(), dockerPartialSize-len(s.buf)))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			s.buf = append(s.buf, b[:i]...)
			_, _ = s.r.Discard(i + 1)
			return bytes.TrimSuffix(s.buf, []byte{'\r'}), false, nil
		}
		s.buf = append(s.buf, b...)
		_, _ = s.r.Discard(len(b))
	}
	return s.buf, true, nil
}
