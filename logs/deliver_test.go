package logs

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/logs/forward"
	"github.com/lookout-agent/lookout/logs/forward/forwardtest"
)

// TestDeliverSavesPositionAndCounts: a follower's delivery over the forward client (whose
// window is tested in logs/forward) saves the position after each batch acknowledged with
// every batch before it, never past a record not acknowledged, and counts the lines, and
// the records sent again after a lost connection as retried.
func TestDeliverSavesPositionAndCounts(t *testing.T) {
	srv := forwardtest.Start(t)
	f, err := New(nil, nil, Options{Address: srv.Addr, StateDir: t.TempDir(), BatchSize: 1, InFlight: 4, Timeout: 20 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[int64]bool{}
	covered := int64(0) // every record up to this one was acknowledged
	f.saved = func(_ string, p Position) {
		mu.Lock()
		defer mu.Unlock()
		if p.TimeNS > covered {
			t.Errorf("position %d saved while record %d was not acknowledged", p.TimeNS, covered+1)
		}
	}
	ack := func(c *forwardtest.Conn, m forwardtest.Message) {
		mu.Lock()
		for _, l := range m.Logs {
			n, _ := strconv.ParseInt(l, 10, 64)
			acked[n] = true
		}
		for acked[covered+1] {
			covered++
		}
		mu.Unlock()
		c.Ack(t, m)
	}
	client, _ := forward.New(f.fwd)
	defer client.Close()
	fl := &follower{f: f, id: "c0ffee", name: "app", tag: "t", cnt: &counters{}, client: client}
	batches := make(chan *batch)
	go func() {
		for i := 1; i <= 6; i++ {
			batches <- &batch{tag: "t", records: []Record{{Time: time.Unix(1700000000, 0), Source: "stdout",
				Log: []byte(strconv.Itoa(i)), Pos: Position{TimeNS: int64(i), N: 1}}}, bytes: 1}
		}
		close(batches)
	}()
	done := make(chan error, 1)
	go func() { done <- fl.deliver(context.Background(), batches) }()

	c := srv.Next(t)
	ms := c.Read(t, 4)
	ack(c, ms[1])
	c.C.Close() // 1, 3 and 4 are sent again
	c2 := srv.Next(t)
	for _, m := range c2.Read(t, 3) {
		ack(c2, m)
	}
	for _, m := range c2.Read(t, 2) {
		ack(c2, m)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("deliver: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("deliver did not end")
	}
	if p, _, _ := f.store.load("c0ffee"); p.TimeNS != 6 {
		t.Errorf("saved position %+v, want record 6", p)
	}
	if n := fl.cnt.lines.Load(); n != 6 {
		t.Errorf("lines %d, want 6", n)
	}
	if n := fl.cnt.retried.Load(); n != 3 {
		t.Errorf("retried %d, want 3", n)
	}
	if n := f.total.lines.Load(); n != 6 {
		t.Errorf("total lines %d, want 6", n)
	}
}

// TestOneConnectionAcrossFollows: a follow that ends (the log ended) and starts again
// goes on with the container's connection instead of opening a new one.
func TestOneConnectionAcrossFollows(t *testing.T) {
	srv := forwardtest.Start(t)
	logs := &fakeLogs{}
	t0 := time.Unix(1700000000, 0)
	logs.add(t0, "first")
	stop := runForwarder(t, logs, srv.Addr, t.TempDir())
	defer stop()
	c := srv.Next(t)
	c.Ack(t, c.Read(t, 1)[0])
	logs.add(t0.Add(time.Second), "second") // read by a later follow (the log ends each time)
	c.Ack(t, c.Read(t, 1)[0])
	select {
	case <-srv.Conns:
		t.Fatal("a second connection was opened")
	default:
	}
}
