package logs

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// forwardMsg is what a fake server read of one Forward message.
type forwardMsg struct {
	chunk string
	logs  []string
}

// readForward reads one Forward-mode message as encodeForward writes it.
func readForward(r *bufio.Reader) (forwardMsg, error) {
	var m forwardMsg
	var skip func(depth int) (string, error) // returns a str's value
	skip = func(depth int) (string, error) {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		n := 0
		switch {
		case c <= 0x7f:
			return "", nil
		case c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb:
			switch c {
			case 0xd9:
				b, _ := r.ReadByte()
				n = int(b)
			case 0xda:
				var b [2]byte
				_, err = io.ReadFull(r, b[:])
				n = int(binary.BigEndian.Uint16(b[:]))
			case 0xdb:
				var b [4]byte
				_, err = io.ReadFull(r, b[:])
				n = int(binary.BigEndian.Uint32(b[:]))
			default:
				n = int(c & 0x1f)
			}
			b := make([]byte, n)
			_, err = io.ReadFull(r, b)
			return string(b), err
		case c == 0xd7: // EventTime
			_, err = r.Discard(9)
			return "", err
		case c == 0xcf:
			_, err = r.Discard(8)
			return "", err
		case c&0xf0 == 0x90 || c == 0xdc:
			n, err = readLen16(r, c, 0x90, 0xdc)
			for i := 0; i < n && err == nil; i++ {
				_, err = skip(depth + 1)
			}
			return "", err
		case c&0xf0 == 0x80 || c == 0xde:
			n, err = readLen16(r, c, 0x80, 0xde)
			for i := 0; i < n && err == nil; i++ {
				var k, v string
				if k, err = skip(depth + 1); err == nil {
					v, err = skip(depth + 1)
				}
				switch k {
				case "chunk":
					m.chunk = v
				case "log":
					m.logs = append(m.logs, v)
				}
			}
			return "", err
		}
		return "", fmt.Errorf("unexpected byte 0x%02x", c)
	}
	_, err := skip(0)
	return m, err
}

// scriptedServer is a forward-protocol server whose acks a test decides: each accepted
// connection is handed to the test with the messages it reads.
type scriptedServer struct {
	addr  string
	conns chan *scriptedConn
}

type scriptedConn struct {
	c    net.Conn
	msgs chan forwardMsg
}

func startScripted(t *testing.T) *scriptedServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &scriptedServer{addr: l.Addr().String(), conns: make(chan *scriptedConn, 4)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			sc := &scriptedConn{c: c, msgs: make(chan forwardMsg, 64)}
			go func() {
				defer close(sc.msgs)
				r := bufio.NewReader(c)
				for {
					m, err := readForward(r)
					if err != nil {
						return
					}
					sc.msgs <- m
				}
			}()
			s.conns <- sc
		}
	}()
	return s
}

func (s *scriptedServer) next(t *testing.T) *scriptedConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

// read returns the next n messages of the connection.
func (c *scriptedConn) read(t *testing.T, n int) []forwardMsg {
	t.Helper()
	var out []forwardMsg
	for len(out) < n {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatalf("connection ended after %d of %d messages", len(out), n)
			}
			out = append(out, m)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d messages arrived", len(out), n)
		}
	}
	return out
}

func (c *scriptedConn) ack(t *testing.T, m forwardMsg) {
	t.Helper()
	b := appendStr(appendStr(appendMapHeader(nil, 1), "ack"), m.chunk)
	if _, err := c.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// windowRun runs deliver over batches of one record each, record i logging "i" with the
// position {TimeNS: i}. The returned check is called with each position saved, with the
// highest record below which every record was acknowledged at that moment; done returns
// deliver's result once it ended.
type windowRun struct {
	mu      sync.Mutex
	covered int64 // every record up to this one was acknowledged
	acked   map[int64]bool
	saves   []int64
	fl      *follower
	done    chan error
}

func startWindow(t *testing.T, addr string, inFlight, records int) *windowRun {
	f, err := New(nil, Options{Address: addr, StateDir: t.TempDir(), BatchSize: 1, InFlight: inFlight, Timeout: 20 * time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := &windowRun{acked: map[int64]bool{}, done: make(chan error, 1)}
	f.saved = func(_ string, p Position) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if p.TimeNS > w.covered {
			t.Errorf("position %d saved while record %d was not acknowledged", p.TimeNS, w.covered+1)
		}
		w.saves = append(w.saves, p.TimeNS)
	}
	w.fl = &follower{f: f, id: "c0ffee", name: "app", tag: "t", cnt: &counters{},
		conn: &conn{network: f.network, addr: f.addr, timeout: f.opts.Timeout}}
	batches := make(chan *batch)
	go func() {
		for i := 1; i <= records; i++ {
			batches <- &batch{tag: "t", records: []Record{{Time: time.Unix(1700000000, 0), Source: "stdout",
				Log: []byte(strconv.Itoa(i)), Pos: Position{TimeNS: int64(i), N: 1}}}, bytes: 1}
		}
		close(batches)
	}()
	go func() { w.done <- w.fl.deliver(context.Background(), batches) }()
	return w
}

// acking notes, before the server sends it, that record m logged is acknowledged.
func (w *windowRun) acking(m forwardMsg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range m.logs {
		n, _ := strconv.ParseInt(l, 10, 64)
		w.acked[n] = true
	}
	for w.acked[w.covered+1] {
		w.covered++
	}
}

func (w *windowRun) ack(t *testing.T, c *scriptedConn, m forwardMsg) {
	w.acking(m)
	c.ack(t, m)
}

func logsOf(ms []forwardMsg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.logs...)
	}
	return out
}

// wait returns deliver's result and the positions saved.
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

// TestWindowAcksOutOfOrder: four messages are written before any ack; acks that arrive
// for later messages first move the position nowhere until the first is acknowledged, then
// to the end of the acknowledged run; everything is delivered once.
func TestWindowAcksOutOfOrder(t *testing.T) {
	srv := startScripted(t)
	w := startWindow(t, srv.addr, 4, 6)
	c := srv.next(t)
	ms := c.read(t, 4) // the window: four messages before any ack
	if got := fmt.Sprint(logsOf(ms)); got != "[1 2 3 4]" {
		t.Fatalf("records %s, want [1 2 3 4] in order", got)
	}
	w.ack(t, c, ms[2])
	w.ack(t, c, ms[1])
	w.ack(t, c, ms[3])
	w.ack(t, c, ms[0]) // now 1 to 4 are acknowledged
	rest := c.read(t, 2)
	w.ack(t, c, rest[1])
	w.ack(t, c, rest[0])
	saves := w.wait(t)
	if len(saves) == 0 || saves[len(saves)-1] != 6 || saves[0] != 4 {
		t.Errorf("positions saved %v: want 4 first (after the ack of 1), 6 last", saves)
	}
	if p, _, _ := w.fl.f.store.load("c0ffee"); p.TimeNS != 6 {
		t.Errorf("saved position %+v, want record 6", p)
	}
	if n := w.fl.cnt.lines.Load(); n != 6 {
		t.Errorf("lines %d, want 6", n)
	}
	if n := w.fl.cnt.retried.Load(); n != 0 {
		t.Errorf("retried %d, want 0", n)
	}
}

// TestWindowConnectionLost: the connection breaks with four messages in flight, one of
// them (not the first) acknowledged: the position stays before the first, the three not
// acknowledged are sent again on a new connection, in order, and counted as retried;
// nothing is lost.
func TestWindowConnectionLost(t *testing.T) {
	srv := startScripted(t)
	w := startWindow(t, srv.addr, 4, 6)
	c := srv.next(t)
	ms := c.read(t, 4)
	w.ack(t, c, ms[1])
	c.c.Close()
	c2 := srv.next(t)
	again := c2.read(t, 3)
	if got := fmt.Sprint(logsOf(again)); got != "[1 3 4]" {
		t.Errorf("sent again: %s, want [1 3 4]", got)
	}
	for _, m := range again {
		w.ack(t, c2, m)
	}
	rest := c2.read(t, 2)
	for _, m := range rest {
		w.ack(t, c2, m)
	}
	saves := w.wait(t)
	if len(saves) == 0 || saves[len(saves)-1] != 6 {
		t.Errorf("positions saved %v: want 6 last", saves)
	}
	if got := fmt.Sprint(logsOf(rest)); got != "[5 6]" {
		t.Errorf("then %s, want [5 6]", got)
	}
	if n := w.fl.cnt.retried.Load(); n != 3 {
		t.Errorf("retried %d, want 3", n)
	}
	if n := w.fl.cnt.lines.Load(); n != 6 {
		t.Errorf("lines %d, want 6", n)
	}
}

// TestOneConnectionAcrossFollows: a follow that ends (the log ended) and starts again
// goes on with the container's connection instead of opening a new one.
func TestOneConnectionAcrossFollows(t *testing.T) {
	srv := startScripted(t)
	logs := &fakeLogs{}
	t0 := time.Unix(1700000000, 0)
	logs.add(t0, "first")
	stop := runForwarder(t, logs, srv.addr, t.TempDir())
	defer stop()
	c := srv.next(t)
	c.ack(t, c.read(t, 1)[0])
	logs.add(t0.Add(time.Second), "second") // read by a later follow (the log ends each time)
	c.ack(t, c.read(t, 1)[0])
	select {
	case <-srv.conns:
		t.Fatal("a second connection was opened")
	default:
	}
}
