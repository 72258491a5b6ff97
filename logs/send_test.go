package logs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The TLS and handshake tests send one message at a time on a conn.

// send writes msg and waits until Fluentd acknowledges chunk: one message in flight (the
// agent itself keeps several, see follower.deliver). Any
// error closes the connection; the next send reconnects.
func (c *conn) send(ctx context.Context, msg []byte, chunk string) error {
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
		c.close()
	}
	return err
}
