package shipper

import "sync"

// buffer is a bounded queue of encoded lines for one output. When full it drops the
// oldest line and counts it. Lines are taken as a transaction: Batch peeks at the head,
// Accept removes what was written (or deliberately dropped) from it. A line dropped for
// room while its batch was in flight is not removed twice: lines carry sequence numbers.
type buffer struct {
	mu      sync.Mutex
	lines   [][]byte // ring
	start   int      // index of the oldest line in lines
	n       int      // lines held
	headSeq uint64   // sequence number of the oldest line held
	dropped uint64   // lines dropped because the buffer was full
	notify  chan struct{}
}

func newBuffer(limit int) *buffer {
	return &buffer{lines: make([][]byte, limit), notify: make(chan struct{}, 1)}
}

// add appends lines, dropping the oldest when the buffer is full.
func (b *buffer) add(lines ...[]byte) {
	b.mu.Lock()
	for _, l := range lines {
		if b.n == len(b.lines) {
			b.lines[b.start] = nil
			b.start = (b.start + 1) % len(b.lines)
			b.n--
			b.headSeq++
			b.dropped++
		}
		b.lines[(b.start+b.n)%len(b.lines)] = l
		b.n++
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// batch returns up to max lines from the head and the sequence number of the first.
func (b *buffer) batch(max int) ([][]byte, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if max > b.n {
		max = b.n
	}
	out := make([][]byte, max)
	for i := range out {
		out[i] = b.lines[(b.start+i)%len(b.lines)]
	}
	return out, b.headSeq
}

// accept removes the lines with sequence numbers below end that are still held.
func (b *buffer) accept(end uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n > 0 && b.headSeq < end {
		b.lines[b.start] = nil
		b.start = (b.start + 1) % len(b.lines)
		b.n--
		b.headSeq++
	}
}

func (b *buffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *buffer) droppedCount() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
