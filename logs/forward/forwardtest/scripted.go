// Package forwardtest is a forward-protocol server whose acks a test decides, for tests
// of the forward client's window and of the log forwarder's connections. It decodes what
// the client writes by itself, so that it does not check the client with the client's own
// code.
package forwardtest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Message is what the server read of one Forward message.
type Message struct {
	Chunk string
	Logs  []string
}

// Server hands each connection it accepts to the test, with the messages it reads.
type Server struct {
	Addr  string
	Conns chan *Conn // accepted connections, in order
}

// Conn is one accepted connection.
type Conn struct {
	C    net.Conn
	msgs chan Message
}

// Start starts a server on a loopback port, stopped when the test ends.
func Start(t testing.TB) *Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &Server{Addr: l.Addr().String(), Conns: make(chan *Conn, 4)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			sc := &Conn{C: c, msgs: make(chan Message, 64)}
			go func() {
				defer close(sc.msgs)
				r := bufio.NewReader(c)
				for {
					m, err := ReadForward(r)
					if err != nil {
						return
					}
					sc.msgs <- m
				}
			}()
			s.Conns <- sc
		}
	}()
	return s
}

// Next returns the next connection accepted.
func (s *Server) Next(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-s.Conns:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

// Read returns the next n messages of the connection.
func (c *Conn) Read(t testing.TB, n int) []Message {
	t.Helper()
	var out []Message
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

// WaitClosed waits until the client closes the connection, skipping what it sends.
func (c *Conn) WaitClosed(t testing.TB) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the client did not close the connection")
		}
	}
}

// Ack acknowledges m: {"ack": chunk}.
func (c *Conn) Ack(t testing.TB, m Message) {
	t.Helper()
	b := []byte{0x81, 0xa3, 'a', 'c', 'k'}
	if len(m.Chunk) < 32 {
		b = append(b, 0xa0|byte(len(m.Chunk)))
	} else {
		b = append(b, 0xd9, byte(len(m.Chunk)))
	}
	b = append(b, m.Chunk...)
	if _, err := c.C.Write(b); err != nil {
		t.Fatal(err)
	}
}

// Logs returns the logs of ms, in order.
func Logs(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Logs...)
	}
	return out
}

// ReadForward reads one Forward-mode message: its chunk option and the log of each record.
func ReadForward(r *bufio.Reader) (Message, error) {
	var m Message
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
					m.Chunk = v
				case "log":
					m.Logs = append(m.Logs, v)
				}
			}
			return "", err
		}
		return "", fmt.Errorf("unexpected byte 0x%02x", c)
	}
	_, err := skip(0)
	return m, err
}

// readLen16 reads the length of a fix or 16-bit array or map.
func readLen16(r *bufio.Reader, c, fix, long byte) (int, error) {
	if c != long {
		return int(c - fix), nil
	}
	var b [2]byte
	_, err := io.ReadFull(r, b[:])
	return int(binary.BigEndian.Uint16(b[:])), err
}
