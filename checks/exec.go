package checks

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
)

// Docker is what exec checks need of the Docker Engine API.
type Docker interface {
	ExecCreate(ctx context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
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
		return finish(Error, "cannot create exec: "+err.Error())
	}
	execID = created.ID
	hj, err := d.ExecAttach(cctx, execID, client.ExecAttachOptions{})
	if err != nil {
		return finish(Error, "cannot start exec: "+err.Error())
	}
	out := &capped{limit: OutputLimit}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, hj.Reader)
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
