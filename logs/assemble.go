package logs

import (
	"fmt"
	"regexp"
	"time"
)

// Record is one log record for Fluentd: a line, or several joined.
type Record struct {
	Time   time.Time // the time Docker stamped on its first piece
	Source string    // stdout or stderr
	Log    []byte
	// Pos is how far the log is covered once this record and all before it are
	// acknowledged: never past the start of a record still being assembled.
	Pos Position
	// Truncated is how many bytes were cut to keep the record within the maximum size.
	Truncated int
	// Split says a multiline record went out because it reached the maximum size: the
	// next line starts another record.
	Split bool
}

// pending is a record being assembled on one stream.
type pending struct {
	start Position // the position before its first message
	ts    time.Time
	buf   []byte
	total int // bytes seen, kept or not
	open  bool
}

// assembler joins Docker's 16 KiB pieces per stream, then, with a multiline pattern, the
// lines of one record, and caps records at maxSize with a truncation marker.
type assembler struct {
	maxSize   int
	multiline *regexp.Regexp
	// partial holds the pieces of a line Docker split; record a multiline record.
	partial, record map[string]*pending
	last            Position // after the last message seen
	emit            func(Record)
	splitting       bool // the record being emitted is a full multiline record
}

// multilineWindow is how much of each line the multiline pattern is matched against: a
// first line shows itself at its start, and the cost of a pattern stays bounded on long
// lines (labels.MaxPatternInsts steps per byte at worst).
const multilineWindow = 4 << 10

func newAssembler(maxSize int, multiline *regexp.Regexp, emit func(Record)) *assembler {
	return &assembler{maxSize: maxSize, multiline: multiline, emit: emit,
		partial: map[string]*pending{}, record: map[string]*pending{}}
}

func (p *pending) add(b []byte, max int) {
	p.total += len(b)
	if room := max - len(p.buf); room > 0 {
		p.buf = append(p.buf, b[:min(room, len(b))]...)
	}
}

func (a *assembler) get(m map[string]*pending, stream string) *pending {
	p := m[stream]
	if p == nil {
		p = &pending{}
		m[stream] = p
	}
	return p
}

// add takes the next message of the container's log.
func (a *assembler) add(m message) {
	a.last = m.after
	pp := a.get(a.partial, m.stream)
	if !m.partial && !pp.open && a.multiline == nil && len(m.line) <= a.maxSize {
		a.emitRecord(m.stream, m.ts, m.line, len(m.line)) // a whole line: no copy
		return
	}
	if !pp.open {
		*pp = pending{start: m.before, ts: m.ts, buf: pp.buf[:0], open: true}
	}
	pp.add(m.line, a.maxSize)
	if m.partial {
		return
	}
	line, total, start, ts := pp.buf, pp.total, pp.start, pp.ts
	pp.open = false
	if a.multiline == nil {
		a.emitRecord(m.stream, ts, line, total)
		pp.buf = nil // handed over
		return
	}
	rp := a.get(a.record, m.stream)
	starts := rp.open && a.multiline.Match(line[:min(len(line), multilineWindow)])
	// A record the line would take above the maximum size goes out without it, and the
	// line starts the next one, so that a pattern that never matches again (or a stack
	// trace without end) holds neither memory nor the log position for long.
	full := rp.open && !starts && rp.total+1+total > a.maxSize
	if starts || full {
		// The new record is pending before the previous one goes out, so the previous
		// one's position stops before this line.
		prev := *rp
		*rp = pending{start: start, ts: ts, open: true}
		rp.add(line, a.maxSize)
		rp.total += total - len(line)
		a.splitting = full
		a.emitRecord(m.stream, prev.ts, prev.buf, prev.total)
		a.splitting = false
		return
	}
	if !rp.open {
		*rp = pending{start: start, ts: ts, open: true}
	} else {
		rp.add([]byte{'\n'}, a.maxSize)
	}
	rp.add(line, a.maxSize)
	rp.total += total - len(line) // bytes of the line beyond what the piece buffer kept
}

func (a *assembler) flushRecord(stream string, rp *pending) {
	rp.open = false
	a.emitRecord(stream, rp.ts, rp.buf, rp.total)
	rp.buf = nil
}

// flush emits every multiline record waiting for its next line (a quiet container), or,
// with all set (the stream ended), every piece too.
func (a *assembler) flush(all bool) {
	for _, s := range []string{"stdout", "stderr"} {
		if rp := a.record[s]; rp != nil && rp.open {
			a.flushRecord(s, rp)
		}
		if pp := a.partial[s]; all && pp != nil && pp.open {
			pp.open = false
			a.emitRecord(s, pp.ts, pp.buf, pp.total)
			pp.buf = nil
		}
	}
}

// waiting says whether a multiline record waits for its next line.
func (a *assembler) waiting() bool {
	for _, p := range a.record {
		if p.open {
			return true
		}
	}
	return false
}

// committed is the position every emitted record covers: before the first message of
// anything still being assembled.
func (a *assembler) committed() Position {
	c := a.last
	for _, m := range []map[string]*pending{a.partial, a.record} {
		for _, p := range m {
			if p.open && p.start.before(c) {
				c = p.start
			}
		}
	}
	return c
}

func (a *assembler) emitRecord(stream string, ts time.Time, line []byte, total int) {
	r := Record{Time: ts, Source: stream, Log: line, Split: a.splitting}
	if total > len(line) {
		r.Truncated = total - len(line)
		r.Log = append(r.Log, fmt.Sprintf(" [truncated by lookout: %d of %d bytes kept]", len(line), total)...)
	}
	r.Pos = a.committed()
	a.emit(r)
}
