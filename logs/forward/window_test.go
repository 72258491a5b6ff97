package forward

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/logs/forward/forwardtest"
)

// testBatch is a batch of one record: record i logs "i" and ends at position i.
type testBatch struct {
	pos int64
	log string
}

// windowRun runs Deliver over batches of one record each, record i logging "i" with the
// position i. Each batch passed is checked against the highest record below which every
// record was acknowledged at that moment; done returns Deliver's result once it ended.
type windowRun struct {
	mu      sync.Mutex
	covered int64 // every record up to this one was acknowledged
	acked   map[int64]bool
	saves   []int64
	lines   int // records acknowledged (the forwarder's lines)
	retried int // records sent again
	done    chan error
}

func startWindow(t *testing.T, addr string, inFlight, records int) *windowRun {
	c, err := New(Config{Address: addr, InFlight: inFlight, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w := &windowRun{acked: map[int64]bool{}, done: make(chan error, 1)}
	hooks := Hooks[testBatch]{
		Encode: func(b testBatch, chunk string) []byte {
			return AppendForward(nil, "t", Meta{}, 1, func(int) Entry {
				return Entry{Time: time.Unix(1700000000, 0), Source: "stdout", Log: []byte(b.log)}
			}, chunk)
		},
		Acked: func(testBatch) { w.mu.Lock(); w.lines++; w.mu.Unlock() },
		Passed: func(b testBatch) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if b.pos > w.covered {
				t.Errorf("position %d passed while record %d was not acknowledged", b.pos, w.covered+1)
			}
			w.saves = append(w.saves, b.pos)
		},
		Retried: func(testBatch) { w.mu.Lock(); w.retried++; w.mu.Unlock() },
		Failed:  func(err error) { t.Logf("failed: %v", err) },
	}
	batches := make(chan testBatch)
	go func() {
		for i := 1; i <= records; i++ {
			batches <- testBatch{pos: int64(i), log: strconv.Itoa(i)}
		}
		close(batches)
	}()
	go func() { w.done <- Deliver(context.Background(), c, batches, hooks) }()
	return w
}

// acking notes, before the server sends it, that record m logged is acknowledged.
func (w *windowRun) acking(m forwardtest.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range m.Logs {
		n, _ := strconv.ParseInt(l, 10, 64)
		w.acked[n] = true
	}
	for w.acked[w.covered+1] {
		w.covered++
	}
}

func (w *windowRun) ack(t *testing.T, c *forwardtest.Conn, m forwardtest.Message) {
	w.acking(m)
	c.Ack(t, m)
}

// wait returns Deliver's result and the positions passed.
func (w *windowRun) wait(t *testing.T) []int64 {
	t.Helper()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("deliver: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("deliver did not end")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.saves
}

func (w *windowRun) counts() (lines, retried int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines, w.retried
}

// TestWindowAcksOutOfOrder: four messages are written before any ack; acks that arrive
// for later messages first move the position nowhere until the first is acknowledged, then
// to the end of the acknowledged run; everything is delivered once.
func TestWindowAcksOutOfOrder(t *testing.T) {
	srv := forwardtest.Start(t)
	w := startWindow(t, srv.Addr, 4, 6)
	c := srv.Next(t)
	ms := c.Read(t, 4) // the window: four messages before any ack
	if got := fmt.Sprint(forwardtest.Logs(ms)); got != "[1 2 3 4]" {
		t.Fatalf("records %s, want [1 2 3 4] in order", got)
	}
	w.ack(t, c, ms[2])
	w.ack(t, c, ms[1])
	w.ack(t, c, ms[3])
	w.ack(t, c, ms[0]) // now 1 to 4 are acknowledged
	rest := c.Read(t, 2)
	w.ack(t, c, rest[1])
	w.ack(t, c, rest[0])
	saves := w.wait(t)
	if len(saves) == 0 || saves[len(saves)-1] != 6 || saves[0] != 4 {
		t.Errorf("positions saved %v: want 4 first (after the ack of 1), 6 last", saves)
	}
	lines, retried := w.counts()
	if lines != 6 {
		t.Errorf("lines %d, want 6", lines)
	}
	if retried != 0 {
		t.Errorf("retried %d, want 0", retried)
	}
}

// TestWindowConnectionLost: the connection breaks with four messages in flight, one of
// them (not the first) acknowledged: the position stays before the first, the three not
// acknowledged are sent again on a new connection, in order, and counted as retried;
// nothing is lost.
func TestWindowConnectionLost(t *testing.T) {
	srv := forwardtest.Start(t)
	w := startWindow(t, srv.Addr, 4, 6)
	c := srv.Next(t)
	ms := c.Read(t, 4)
	w.ack(t, c, ms[1])
	c.C.Close()
	c2 := srv.Next(t)
	again := c2.Read(t, 3)
	if got := fmt.Sprint(forwardtest.Logs(again)); got != "[1 3 4]" {
		t.Errorf("sent again: %s, want [1 3 4]", got)
	}
	for _, m := range again {
		w.ack(t, c2, m)
	}
	rest := c2.Read(t, 2)
	for _, m := range rest {
		w.ack(t, c2, m)
	}
	saves := w.wait(t)
	if len(saves) == 0 || saves[len(saves)-1] != 6 {
		t.Errorf("positions saved %v: want 6 last", saves)
	}
	if got := fmt.Sprint(forwardtest.Logs(rest)); got != "[5 6]" {
		t.Errorf("then %s, want [5 6]", got)
	}
	lines, retried := w.counts()
	if retried != 3 {
		t.Errorf("retried %d, want 3", retried)
	}
	if lines != 6 {
		t.Errorf("lines %d, want 6", lines)
	}
}
