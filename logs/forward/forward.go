package logs

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// batch is a Forward-mode message in the making: records of one container under one tag.
type batch struct {
	tag     string
	records []Record
	bytes   int
}

// encodeForward writes a batch in the forward protocol's Forward mode,
// [tag, [[time, record], …], {"chunk": id, "size": n}], each record being meta (the
// container's fields, already encoded, n pairs) plus source and log.
func encodeForward(b *batch, meta []byte, metaPairs int, chunk string) []byte {
	buf := appendArrayHeader(nil, 3)
	buf = appendStr(buf, b.tag)
	buf = appendArrayHeader(buf, len(b.records))
	for _, r := range b.records {
		buf = appendArrayHeader(buf, 2)
		buf = appendEventTime(buf, r.Time)
		buf = appendMapHeader(buf, metaPairs+2)
		buf = append(buf, meta...)
		buf = appendStr(buf, "source")
		buf = appendStr(buf, r.Source)
		buf = appendStr(buf, "log")
		buf = appendStr(buf, r.Log)
	}
	buf = appendMapHeader(buf, 2)
	buf = appendStr(buf, "chunk")
	buf = appendStr(buf, chunk)
	buf = appendStr(buf, "size")
	return appendUint(buf, uint64(len(b.records)))
}

// encodeMeta encodes the fields every record of a container carries, in order.
func encodeMeta(fields [][2]string) ([]byte, int) {
	var b []byte
	n := 0
	for _, f := range fields {
		if f[1] == "" {
			continue
		}
		b = appendStr(appendStr(b, f[0]), f[1])
		n++
	}
	return b, n
}

func newChunkID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// conn is one connection to Fluentd. One goroutine (the follower's sender) opens it and
// writes messages; a reader goroutine of the connection passes the acks it reads on.
type conn struct {
	network, addr string
	tls           *tls.Config // nil: plain TCP
	timeout       time.Duration
	auth          *Auth // nil: no shared key; a server that sends HELO is refused (errHELO)
	oneShot       bool  // the server closes the connection after each message (HELO keepalive false)
	c             net.Conn
	acks          chan ack      // from the reader of c; an error is its last
	stopped       chan struct{} // closed by close: the reader gives up passing acks on
}

// ack is what the reader of a connection got: the chunk ID of an ack, or the error that
// ended the connection.
type ack struct {
	chunk string
	err   error
}

// parseAddress splits LOOKOUT_FLUENTD_ADDRESS: host:port, tcp://host:port or unix:///path.
func parseAddress(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "unix://"):
		return "unix", strings.TrimPrefix(a, "unix://"), nil
	case strings.HasPrefix(a, "tcp://"):
		a = strings.TrimPrefix(a, "tcp://")
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", "", fmt.Errorf("want host:port, tcp://host:port or unix:///path/to/socket")
	}
	return "tcp", a, nil
}

// open connects; with a shared key it first waits for the server's HELO and does the
// handshake, as Fluentd's out_forward does with <security>. Then a reader goroutine passes
// every ack on.
func (c *conn) open(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout}
	var nc net.Conn
	var err error
	if c.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: &d, Config: c.tls}).DialContext(ctx, c.network, c.addr)
	} else {
		nc, err = d.DialContext(ctx, c.network, c.addr)
	}
	if err != nil {
		return err
	}
	r := bufio.NewReader(nc)
	if c.auth != nil {
		stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
		_ = nc.SetDeadline(time.Now().Add(c.timeout))
		keepalive, err := c.auth.handshake(r, nc)
		stop()
		c.oneShot = !keepalive
		if err != nil {
			nc.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		_ = nc.SetDeadline(time.Time{})
	}
	acks, stopped := make(chan ack, 16), make(chan struct{})
	c.c, c.acks, c.stopped = nc, acks, stopped
	go func() {
		for {
			chunk, err := readAck(r)
			select {
			case acks <- ack{chunk, err}:
			case <-stopped:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return nil
}

// write writes one message, within the timeout.
func (c *conn) write(ctx context.Context, msg []byte) error {
	nc := c.c
	stop := context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(time.Now()) })
	defer stop()
	_ = nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := nc.Write(msg)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// broken says whether the reader of an open connection has ended (the server closed it):
// then the connection is closed, and the next message needs a new one.
func (c *conn) broken() bool {
	if c.c == nil {
		return false
	}
	select {
	case <-c.acks: // an error, or an ack nobody waits for: either way the connection is done
		c.close()
		return true
	default:
		return false
	}
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		close(c.stopped)
		c.c, c.acks, c.stopped = nil, nil, nil
	}
}
