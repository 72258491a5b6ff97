package testpeer

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Agent is a Lookout agent run as a process by the end-to-end tests (e2e, e2e/churn),
// its standard output and error kept in memory.
type Agent struct {
	Cmd  *exec.Cmd
	Done chan struct{} // closed when the process has exited

	Mu     sync.Mutex // guards Stdout and Stderr
	Stdout bytes.Buffer
	Stderr bytes.Buffer
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// StartAgent runs `bin run` with env added to a clean environment: PATH, debug logging,
// a heartbeat file and a state directory of its own under dir (unless env names them),
// and DOCKER_HOST, so that the agent watches the engine under test (an env entry naming
// LOOKOUT_DOCKER_HOST still wins, as it does for a user).
func StartAgent(bin, dir string, env []string) (*Agent, error) {
	a := &Agent{Done: make(chan struct{})}
	a.Cmd = exec.Command(bin, "run")
	a.Cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOOKOUT_LOG_LEVEL=debug",
		"LOOKOUT_HEARTBEAT_FILE=" + filepath.Join(dir, "hb"), "LOOKOUT_STATE_DIR=" + filepath.Join(dir, "state")}, env...)
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		a.Cmd.Env = append([]string{"DOCKER_HOST=" + h}, a.Cmd.Env...)
	}
	a.Cmd.Stdout = lockedWriter{&a.Mu, &a.Stdout}
	a.Cmd.Stderr = lockedWriter{&a.Mu, &a.Stderr}
	if err := a.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = a.Cmd.Wait(); close(a.Done) }()
	return a, nil
}

// Stop interrupts the agent and waits up to grace for it to exit, then kills it; it says
// when the agent had to be killed, and when the race detector reported a data race.
func (a *Agent) Stop(grace time.Duration) error {
	select {
	case <-a.Done:
	default:
		_ = a.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.Done:
		case <-time.After(grace):
			_ = a.Cmd.Process.Kill()
			<-a.Done
			return fmt.Errorf("agent did not stop within %s of SIGINT", grace)
		}
	}
	if strings.Contains(a.Logs(), "WARNING: DATA RACE") {
		return fmt.Errorf("the race detector found a data race in the agent:\n%s", a.Logs())
	}
	return nil
}

// Logs is what the agent wrote to its standard error so far.
func (a *Agent) Logs() string {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	return a.Stderr.String()
}

// Out is what the agent wrote to its standard output so far.
func (a *Agent) Out() string {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	return a.Stdout.String()
}

// OutFrom is what the agent wrote to its standard output from byte off on, and the offset
// of its end.
func (a *Agent) OutFrom(off int) (string, int) {
	a.Mu.Lock()
	defer a.Mu.Unlock()
	b := a.Stdout.Bytes()
	off = min(off, len(b))
	return string(b[off:]), len(b)
}

// Eventually polls cond every 100 ms until it holds, and fails the test when timeout
// passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}
