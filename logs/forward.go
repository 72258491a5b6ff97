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
func encodeForward(buf []byte, b *batch, meta []byte, metaPairs int, chunk string) []byte {
	buf = appendArrayHeader(buf[:0], 3)
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

// conn is one connection to Fluentd that sends a message and waits for its ack.
type conn struct {
	network, addr string
	tls           *tls.Config // nil: plain TCP
	timeout       time.Duration
	auth          *Auth // nil: no shared key; a server that sends HELO is refused (errHELO)
	oneShot       bool  // the server closes the connection after each message (HELO keepalive false)
	c             net.Conn
	r             *bufio.Reader
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

// send writes msg and waits until Fluentd acknowledges chunk. Any error closes the
// connection; the next send reconnects. With a shared key a new connection first waits for
// the server's HELO and does the handshake, as Fluentd's out_forward does with <security>.
func (c *conn) send(ctx context.Context, msg []byte, chunk string) error {
	fresh := c.c == nil
	if fresh {
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
		c.c, c.r = nc, bufio.NewReader(nc)
	}
	nc := c.c // close sets c.c to nil before the deferred stop runs
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	if fresh && c.auth != nil {
		keepalive, err := c.auth.handshake(c.r, c.c)
		c.oneShot = !keepalive
		if err != nil {
			c.close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
	if _, err := c.c.Write(msg); err != nil {
		c.close()
		return err
	}
	ack, err := readAck(c.r)
	if err == nil && ack != chunk {
		err = fmt.Errorf("forward protocol: ack %q for chunk %q", ack, chunk)
	}
	if err != nil {
		c.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if c.oneShot {
		c.close()
	}
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c, c.r = nil, nil
	}
}
