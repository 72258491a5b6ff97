package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// replyLimit caps the bytes of a TCP reply read while looking for c.Expect.
const replyLimit = 4 << 10

// TCP is the Prober of TCP checks: each run connects anew, and nothing is kept between
// runs.
type TCP struct{}

var _ Prober = TCP{}

// Runner implements Prober.
func (TCP) Runner(chk labels.Check, _ bool) Runner { return ProbeFunc(ProbeTCP).Runner(chk, false) }

// ProbeTCP runs one TCP check against addr, a resolved "host:port". c.Timeout (5s if
// unset) bounds the whole probe. Without c.Send and c.Expect a connection is enough.
// c.Send, if set, is written once connected. With c.Expect set, the reply is read until
// it contains c.Expect, the server closes, 4 KiB have come or the time is up; a reply
// that came but does not contain c.Expect is a failure, no reply at all in time a
// timeout. What was read is kept as Output when the result is not a success.
func ProbeTCP(ctx context.Context, c labels.Check, addr string) Result {
	start := time.Now()
	res := Result{Check: c.Name, Type: labels.CheckTCP, Start: start, Target: addr}
	timeout := probeTimeout(c)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	finish := func(result, reason string, reply []byte) Result {
		res.Duration = time.Since(start)
		res.Result, res.Reason = result, reason
		if result != Success && len(reply) > 0 {
			res.Output = Truncate(string(reply), OutputLimit)
		}
		return res
	}

	conn, err := dialer(c)(pctx, "tcp", addr)
	if err != nil {
		result, reason := classify(ctx, pctx, err, timeout)
		res.Refused = isRefused(err)
		return finish(result, reason, nil)
	}
	defer conn.Close()
	if dl, ok := pctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// The caller stopping the probe interrupts a blocked read or write too.
	stop := context.AfterFunc(pctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if c.Send != "" {
		if _, err := io.WriteString(conn, c.Send); err != nil {
			result, reason := classify(ctx, pctx, err, timeout)
			if result == Error && reason != stoppedReason {
				reason = capReason("sending: " + reason)
			}
			return finish(result, reason, nil)
		}
	}
	if c.Expect == "" {
		return finish(Success, "", nil)
	}

	expect := []byte(c.Expect)
	mismatch := fmt.Sprintf("reply does not contain %q", c.Expect)
	buf := make([]byte, 0, replyLimit)
	for {
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, expect) {
			return finish(Success, "", nil)
		}
		if len(buf) == cap(buf) {
			return finish(Failure, mismatch, buf)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(buf) == 0 {
				return finish(Failure, "connection closed without a reply", nil)
			}
			return finish(Failure, mismatch, buf)
		}
		result, reason := classify(ctx, pctx, err, timeout)
		switch {
		case result == Timeout && len(buf) > 0:
			// A reply came, and it is not the expected one.
			return finish(Failure, mismatch, buf)
		case result == Error && reason != stoppedReason:
			reason = capReason("reading the reply: " + reason)
		}
		return finish(result, reason, buf)
	}
}
