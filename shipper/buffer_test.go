package shipper

import (
	"fmt"
	"testing"
)

func lines(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, []byte(fmt.Sprint(i)))
	}
	return out
}

func TestBufferDropsOldestAndCounts(t *testing.T) {
	b := newBuffer(3)
	b.add(lines(0, 5)...)
	got, seq := b.batch(10)
	if len(got) != 3 || string(got[0]) != "2" || string(got[2]) != "4" || seq != 2 {
		t.Fatalf("batch = %q seq %d, want [2 3 4] seq 2", got, seq)
	}
	if b.droppedCount() != 2 {
		t.Fatalf("dropped = %d, want 2", b.droppedCount())
	}
}

func TestBufferAcceptSkipsLinesDroppedInFlight(t *testing.T) {
	b := newBuffer(3)
	b.add(lines(0, 3)...)
	batch, seq := b.batch(2) // 0, 1 in flight
	b.add(lines(3, 5)...)    // drops 0 and 1 for room
	b.accept(seq + uint64(len(batch)))
	got, _ := b.batch(10)
	if len(got) != 3 || string(got[0]) != "2" {
		t.Fatalf("after accept = %q, want [2 3 4]", got)
	}
	b.accept(seq + 3) // accepts line 2 only
	got, _ = b.batch(10)
	if len(got) != 2 || string(got[0]) != "3" {
		t.Fatalf("after second accept = %q, want [3 4]", got)
	}
}
