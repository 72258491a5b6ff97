package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// process is a peer program with its output appended to a log file. InfluxDB, the
// Fluentd receiver and Jaeger share it: start, wait until ready, stop and wait.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the program has exited
}

// startProcess runs bin with args (env added to this process's environment), its output
// appended to logPath, and polls ready every 100 ms until it holds. If the program exits
// first the error carries the end of its log; if ready does not hold within timeout the
// program is killed.
func startProcess(name, logPath string, env []string, ready func() bool, timeout time.Duration,
	bin string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start (log %s):\n%s", name, logPath, logTail(logPath))
		default:
		}
		if ready() {
			return p, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop(0)
	return nil, fmt.Errorf("%s was not ready within %s (log %s)", name, timeout, logPath)
}

// stop interrupts the program and waits up to grace for it to end, then kills it; a grace
// of 0 kills at once. It returns when the program has exited. A nil process is stopped.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// pid is the program's process ID, 0 for a nil process.
func (p *process) pid() int {
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// logTail returns the last 4 KiB of a log file.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-4096):])
}
