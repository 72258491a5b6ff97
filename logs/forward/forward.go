// Package forward is a client of Fluentd's forward protocol: Forward-mode messages with a
// chunk ID, each acknowledged by the server, over TCP, TLS or a Unix socket, with the
// shared-key handshake of protocol v1 when the server asks for it (HELO). A Client is one
// connection, opened when a message is to be written and opened again after a failure;
// Deliver keeps a window of messages on it before their acks.
package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config configures a Client.
type Config struct {
	Address  string        // host:port, tcp://host:port or unix:///path
	TLS      *tls.Config   // nil: plain TCP
	Auth     *Auth         // nil: no shared key; a server that sends HELO is refused (errHELO)
	Timeout  time.Duration // connect, write, handshake and wait for an ack (default DefaultTimeout)
	InFlight int           // messages written on the connection before their acks (Deliver; default DefaultInFlight)
}

// The defaults of Config.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultInFlight = 4
)

// Client is one connection to Fluentd. One goroutine at a time uses it (Send, Deliver,
// Close); a reader goroutine of the open connection passes the acks it reads on.
type Client struct {
	network, addr string
	tls           *tls.Config
	timeout       time.Duration
	auth          *Auth
	inFlight      int
	oneShot       bool // the server closes the connection after each message (HELO keepalive false)
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

// New returns a client of the server at cfg.Address; it connects when it first writes.
func New(cfg Config) (*Client, error) {
	network, addr, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("fluentd address %q: %w", cfg.Address, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	return &Client{network: network, addr: addr, tls: cfg.TLS, timeout: cfg.Timeout, auth: cfg.Auth, inFlight: cfg.InFlight}, nil
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

// Send writes msg and waits until Fluentd acknowledges chunk: one message in flight
// (Deliver keeps several). Any error closes the connection; the next message reconnects.
func (c *Client) Send(ctx context.Context, msg []byte, chunk string) error {
	if c.broken() || c.c == nil {
		if err := c.open(ctx); err != nil {
			return err
		}
	}
	err := c.write(ctx, msg)
	if err == nil {
		t := time.NewTimer(c.timeout)
		defer t.Stop()
		select {
		case a := <-c.acks:
			if err = a.err; err == nil && a.chunk != chunk {
				err = fmt.Errorf("forward protocol: ack %q for chunk %q", a.chunk, chunk)
			}
		case <-t.C:
			err = errors.New("forward protocol: no ack within the timeout")
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil || c.oneShot {
		c.Close()
	}
	return err
}

// open connects; with a shared key it first waits for the server's HELO and does the
// handshake, as Fluentd's out_forward does with <security>. Then a reader goroutine passes
// every ack on.
func (c *Client) open(ctx context.Context) error {
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
func (c *Client) write(ctx context.Context, msg []byte) error {
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
func (c *Client) broken() bool {
	if c.c == nil {
		return false
	}
	select {
	case <-c.acks: // an error, or an ack nobody waits for: either way the connection is done
		c.Close()
		return true
	default:
		return false
	}
}

// Close closes the connection, if open; the client may be used again (it reconnects).
func (c *Client) Close() {
	if c.c != nil {
		_ = c.c.Close()
		close(c.stopped)
		c.c, c.acks, c.stopped = nil, nil, nil
	}
}
