package checks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
)

// Docker is what exec checks need of the Docker Engine API: *client.Client. An exec is
// started with a request of its own on a connection from Dialer (see startExec).
type Docker interface {
	ExecCreate(ctx context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
	Dialer() func(context.Context) (net.Conn, error)
	ClientVersion() string
}

// Exec is the Prober of exec checks: the command runs inside the container through
// Docker's exec API. A check's runner remembers its last exec, so that a run still going
// is not joined by another (see ProbeExec).
type Exec struct{ Docker Docker }

var _ Prober = Exec{}

// Runner implements Prober.
func (e Exec) Runner(chk labels.Check, _ bool) Runner { return &execRunner{d: e.Docker, chk: chk} }

type execRunner struct {
	d        Docker
	chk      labels.Check
	lastExec string // the exec ID of the previous run
}

func (r *execRunner) Run(ctx context.Context, c *inventory.Container, _ string) Result {
	res, id := ProbeExec(ctx, r.d, c.ID, r.chk, r.lastExec)
	if id != "" {
		r.lastExec = id
	}
	return res
}

func (r *execRunner) Close() {}

// capped keeps the first limit bytes written to it and counts them all.
type capped struct {
	mu    sync.Mutex
	buf   []byte
	limit int
	total int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += len(p)
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(string(c.buf))
	if c.total > len(c.buf) {
		s += fmt.Sprintf(" … (captured %d of %d bytes)", len(c.buf), c.total)
	}
	return s
}

// ProbeExec runs chk.Command inside the container through the Docker exec API. Output
// (stdout and stderr together) is capped at 4 KiB, saying how much was captured of how
// much. At its timeout the command is killed (by its host PID, which works when the agent
// shares the host's PID namespace, as it does outside a container or with pid: host);
// the result says whether the kill worked. prev, when not "", is the exec ID of this
// check's previous run: if that is still running, this run does not start.
func ProbeExec(ctx context.Context, d Docker, containerID string, chk labels.Check, prev string) (res Result, execID string) {
	timeout := chk.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	res = Result{Check: chk.Name, Type: labels.CheckExec, Start: time.Now(), Target: strings.Join(chk.Command, " ")}
	finish := func(result, reason string) (Result, string) {
		res.Result, res.Reason, res.Duration = result, reason, time.Since(res.Start)
		return res, execID
	}
	if prev != "" {
		if in, err := d.ExecInspect(ctx, prev, client.ExecInspectOptions{}); err == nil && in.Running {
			return finish(Error, fmt.Sprintf("the previous run (pid %d) is still running; not starting another", in.PID))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	created, err := d.ExecCreate(cctx, containerID, client.ExecCreateOptions{Cmd: chk.Command, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return finish(Error, "cannot create exec: "+dockerError(err))
	}
	execID = created.ID
	hj, err := startExec(cctx, d, execID)
	if err != nil {
		return finish(Error, "cannot start exec: "+err.Error())
	}
	out := &capped{limit: OutputLimit}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, hj)
		done <- err
	}()
	select {
	case <-done:
		hj.Close()
	case <-cctx.Done():
		hj.Close()
		<-done
		res.Output = out.String()
		if ctx.Err() != nil {
			return finish(Error, "stopped")
		}
		return finish(Timeout, fmt.Sprintf("timeout after %s; %s", timeout, kill(ctx, d, execID)))
	}
	res.Output = out.String()
	// The stream ends a moment before Docker records the exit code.
	var in client.ExecInspectResult
	for i := 0; i < 50; i++ {
		in, err = d.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil || !in.Running {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return finish(Error, "cannot read the exit code: "+err.Error())
	}
	code := in.ExitCode
	res.ExitCode = &code
	switch code {
	case 0:
		return finish(Success, "")
	case 126, 127:
		return finish(Error, fmt.Sprintf("exit code %d: the command could not run", code))
	default:
		return finish(Failure, fmt.Sprintf("exit code %d", code))
	}
}

// dockerError is err on one line (a proxy's error page has several), naming a 403 Forbidden
// if its text does not: what a socket proxy that does not let exec through answers.
func dockerError(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if cerrdefs.IsPermissionDenied(err) && !strings.Contains(msg, "403") {
		msg = "403 Forbidden: " + msg
	}
	return msg
}

// startExec starts an exec and returns its output stream (stdout and stderr multiplexed),
// which ends when the command does; closing it (or ctx ending) closes the connection.
//
// It is Docker's exec start without the upgrade to a raw TCP stream that the Docker client
// asks for (Connection: Upgrade): Docker then answers 200 and sends the output as the body,
// until it closes the connection. The same bytes, but a plain HTTP exchange that a proxy
// passes on: HAProxy 2.4 to 3.0 (Debian 12 has 2.6) drop the upgrade of a request with a
// body, and the client's attach fails with "unable to upgrade to tcp, received 200".
func startExec(ctx context.Context, d Docker, execID string) (io.ReadCloser, error) {
	conn, err := d.Dialer()(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // unblocks a read or write
	path := "/exec/" + execID + "/start"
	if v := d.ClientVersion(); v != "" {
		path = "/v" + v + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker"+path, strings.NewReader(`{"Detach":false,"Tty":false}`))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		err = req.Write(conn)
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(bufio.NewReader(conn), req)
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = execRefusal(resp)
	}
	if err != nil {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &execStream{Reader: resp.Body, close: func() { stop(); conn.Close() }}, nil
}

type execStream struct {
	io.Reader
	close func()
}

func (s *execStream) Close() error { s.close(); return nil }

// execRefusal is the error of an answer other than 200: the status and the message of Docker's
// JSON error, or the first line of any other body (a proxy's page), at most 200 bytes.
func execRefusal(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var e struct{ Message string }
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	msg, _, _ = strings.Cut(msg, "\n")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		return fmt.Errorf("the Docker API answered %s", resp.Status)
	}
	return fmt.Errorf("the Docker API answered %s: %s", resp.Status, msg)
}

// kill ends a timed-out exec by its host PID and says how that went.
func kill(ctx context.Context, d Docker, execID string) string {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	in, err := d.ExecInspect(ictx, execID, client.ExecInspectOptions{})
	if err != nil {
		return "could not find its process: " + err.Error()
	}
	if !in.Running {
		return "it had ended"
	}
	if in.PID <= 0 {
		return "Docker gave no PID to kill"
	}
	if err := syscall.Kill(in.PID, syscall.SIGKILL); err != nil {
		return fmt.Sprintf("could not kill pid %d (%v): the agent needs the host's PID namespace", in.PID, err)
	}
	return fmt.Sprintf("killed pid %d", in.PID)
}

var _ io.Writer = (*capped)(nil)
