package forward

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A server that accepts the connection and never answers, in each way it can: it reads
// and discards (no ack), reads nothing at all (the write fills the socket buffers), never
// sends HELO to a client with a shared key, or sends HELO and never answers the PING.
// Each send fails within about the timeout, with an error saying what was missing.
func TestSilentServerTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	helo := appendArrayHeader(nil, 2)
	helo = appendStr(helo, "HELO")
	helo = appendMapHeader(helo, 3)
	helo = appendBin(appendStr(helo, "nonce"), "n0nce")
	helo = appendBin(appendStr(helo, "auth"), "")
	helo = append(appendStr(helo, "keepalive"), 0xc3)
	auth := &Auth{SharedKey: "k3y", SelfHostname: "agent-1"}
	big := strings.Repeat("x", 8<<20) // more than the socket buffers hold
	for _, c := range []struct {
		name  string
		serve func(net.Conn)
		auth  *Auth
		log   string
		want  string
	}{
		{"no ack", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }, nil, "hello", "no ack"},
		{"reads nothing", func(net.Conn) {}, nil, big, "timeout"},
		{"no HELO", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }, auth, "hello", "timeout"},
		{"no PONG", func(c net.Conn) { _, _ = c.Write(helo); _, _ = io.Copy(io.Discard, c) }, auth, "hello", "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan struct{}) // the server closes nothing itself: the test's end does
			defer close(done)
			go func() {
				for {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					go func() { c.serve(conn); <-done; conn.Close() }()
				}
			}()
			cl := newClient(t, Config{Address: l.Addr().String(), Timeout: timeout, Auth: c.auth})
			defer cl.Close()
			start := time.Now()
			err = cl.Send(context.Background(), oneRecord("t", Entry{Time: time.Now(), Source: "stdout", Log: []byte(c.log)}, NewMeta(nil), "chunk1"), "chunk1")
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("send to a silent server: %v, want an error saying %q", err, c.want)
			}
			// Generous: one timeout for the handshake or the write, one for the ack.
			if took > 20*timeout {
				t.Errorf("send to a silent server took %s with a timeout of %s", took, timeout)
			}
		})
	}
}
