package otlp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// serveLimited serves 200 OK on a listener limited to max connections.
func serveLimited(t *testing.T, max int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimit(ln, max)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ConnState: l.connState}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr, write string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, write); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

const request = "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"

// Connections still sending their headers hold their slots: one more waits until one of
// them ends.
func TestConnLimitHoldsTheBusyOnes(t *testing.T) {
	addr := serveLimited(t, 2)
	c1, _ := dial(t, addr, "POST /v1/traces HTTP/1.1\r\nX-Slow: ")
	dial(t, addr, "POST /v1/traces HTTP/1.1\r\nX-Slow: ")
	c3, r3 := dial(t, addr, request)
	_ = c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := http.ReadResponse(r3, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection to a listener of two busy ones: %v, want no answer yet", err)
	}
	c1.Close()
	_ = c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(r3, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("once one ended: %v %v", resp, err)
	}
}

// With every slot taken, an idle keep-alive connection is closed to serve a new one.
func TestConnLimitClosesTheIdle(t *testing.T) {
	addr := serveLimited(t, 1)
	c1, r1 := dial(t, addr, request)
	if resp, err := http.ReadResponse(r1, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first: %v %v", resp, err)
	}
	c2, r2 := dial(t, addr, request)
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(r2, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("second, with the first idle: %v %v", resp, err)
	}
	_ = c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r1.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the idle connection: read %v, want it closed", err)
	}
}
