package checks

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// tcpServer serves each connection with handle until the test ends.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go func() { <-done; c.Close() }()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpCheck() labels.Check {
	return labels.Check{Name: "redis", Type: labels.CheckTCP, Timeout: 30 * time.Second}
}

// pingServer answers "+PONG" to each "PING" line, "-ERR" to anything else.
func pingServer(c net.Conn) {
	s := bufio.NewScanner(c)
	for s.Scan() {
		if strings.TrimSpace(s.Text()) == "PING" {
			io.WriteString(c, "+PONG\r\n")
		} else {
			io.WriteString(c, "-ERR unknown command\r\n")
		}
	}
}

func TestProbeTCPConnect(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {})
	before := time.Now()
	r := ProbeTCP(context.Background(), tcpCheck(), addr)
	wantResult(t, r, Success)
	if r.Check != "redis" || r.Type != "tcp" || r.Target != addr || r.Reason != "" || r.Output != "" || r.StatusCode != 0 {
		t.Errorf("result %+v", r)
	}
	if r.Start.Before(before) || r.Duration <= 0 || r.Duration > time.Since(before) {
		t.Errorf("start %v, duration %v", r.Start, r.Duration)
	}
}

func TestProbeTCPSendExpect(t *testing.T) {
	addr := tcpServer(t, pingServer)
	c := tcpCheck()
	c.Send, c.Expect = "PING\n", "PONG"
	wantResult(t, ProbeTCP(context.Background(), c, addr), Success)

	c.Send = "HELLO\n"
	c.Timeout = 300 * time.Millisecond
	r := ProbeTCP(context.Background(), c, addr)
	// The server keeps the connection open: the probe waits for more until the timeout.
	wantResult(t, r, Failure)
	if r.Reason != `reply does not contain "PONG"` || r.Output != "-ERR unknown command\r\n" {
		t.Errorf("reason %q, output %q", r.Reason, r.Output)
	}
}

func TestProbeTCPSendOnly(t *testing.T) {
	got := make(chan string, 1)
	addr := tcpServer(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	c := tcpCheck()
	c.Send = "QUIT\r\n"
	wantResult(t, ProbeTCP(context.Background(), c, addr), Success)
	if s := <-got; s != "QUIT\r\n" {
		t.Errorf("server read %q", s)
	}
}

func TestProbeTCPReplyInPieces(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {
		for _, s := range []string{"+P", "O", "NG\r\n"} {
			io.WriteString(c, s)
		}
		io.Copy(io.Discard, c)
	})
	c := tcpCheck()
	c.Expect = "+PONG"
	wantResult(t, ProbeTCP(context.Background(), c, addr), Success)
}

func TestProbeTCPMismatchThenClose(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {
		io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n")
	})
	c := tcpCheck()
	c.Expect = "PONG"
	start := time.Now()
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Failure)
	if r.Reason != `reply does not contain "PONG"` || r.Output != "SSH-2.0-OpenSSH_9.6\r\n" {
		t.Errorf("reason %q, output %q", r.Reason, r.Output)
	}
	if time.Since(start) > 10*time.Second { // well before the 30 s timeout
		t.Errorf("waited %v after the server closed", time.Since(start))
	}
}

func TestProbeTCPClosedWithoutReply(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {})
	c := tcpCheck()
	c.Expect = "PONG"
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Failure)
	if r.Reason != "connection closed without a reply" || r.Output != "" {
		t.Errorf("reason %q, output %q", r.Reason, r.Output)
	}
}

func TestProbeTCPLongReply(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {
		io.WriteString(c, strings.Repeat("z", 1<<20)+"PONG")
	})
	c := tcpCheck()
	c.Expect = "PONG"
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Failure)
	if r.Reason != `reply does not contain "PONG"` || r.Output != strings.Repeat("z", replyLimit) {
		t.Errorf("reason %q, output of %d bytes", r.Reason, len(r.Output))
	}
}

func TestProbeTCPRefused(t *testing.T) {
	addr := closedPort(t)
	c := tcpCheck()
	c.Send, c.Expect = "PING\n", "PONG"
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Error)
	if r.Reason != "connection refused" || r.Target != addr {
		t.Errorf("reason %q, target %q", r.Reason, r.Target)
	}
}

func TestProbeTCPNoReply(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := tcpCheck()
	c.Send, c.Expect = "PING\n", "PONG"
	c.Timeout = 300 * time.Millisecond
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Timeout)
	if r.Reason != "timeout after 300ms" || r.Output != "" {
		t.Errorf("reason %q, output %q", r.Reason, r.Output)
	}
	if r.Duration < c.Timeout || r.Duration > c.Timeout+5*time.Second {
		t.Errorf("duration %v for a timeout of %v", r.Duration, c.Timeout)
	}
}

func TestProbeTCPPartialReplyThenSilence(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) {
		io.WriteString(c, "+PO")
		io.Copy(io.Discard, c)
	})
	c := tcpCheck()
	c.Expect = "PONG"
	c.Timeout = 300 * time.Millisecond
	r := ProbeTCP(context.Background(), c, addr)
	wantResult(t, r, Failure)
	if r.Reason != `reply does not contain "PONG"` || r.Output != "+PO" {
		t.Errorf("reason %q, output %q", r.Reason, r.Output)
	}
}

func TestProbeTCPCanceled(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := tcpCheck()
	c.Expect = "PONG"
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := ProbeTCP(ctx, c, addr)
	wantResult(t, r, Error)
	if r.Reason != "stopped" || time.Since(start) > 10*time.Second {
		t.Errorf("reason %q after %v", r.Reason, time.Since(start))
	}
}

func TestTCPResultPoint(t *testing.T) {
	addr := tcpServer(t, func(c net.Conn) { io.WriteString(c, "nope") })
	c := tcpCheck()
	c.Expect = "PONG"
	p := ProbeTCP(context.Background(), c, addr).Point(nil)
	if p.Tag("type") != "tcp" || p.Tag("result") != "failure" || p.Tag("check") != "redis" {
		t.Errorf("tags %v", p.Tags)
	}
	if p.Field("output") != "nope" || p.Field("reason") != `reply does not contain "PONG"` || p.Field("target") != addr {
		t.Errorf("fields %v", p.Fields)
	}
	if p.Field("http_response_code") != nil || p.Field("connect_time") != nil {
		t.Errorf("HTTP fields on a TCP point: %v", p.Fields)
	}
}
