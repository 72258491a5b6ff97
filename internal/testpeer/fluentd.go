package testpeer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Fluentd is a Fluentd forward-protocol server (peers/fluentd: the OpenTelemetry
// Collector's fluentforward receiver) listening on 127.0.0.1:Port and appending every
// record it receives to Out as JSON lines. Stop and Start again keep the port and the file.
type Fluentd struct {
	Bin  string
	Dir  string
	Port int
	Addr string // 127.0.0.1:Port
	Out  string // the records file
	cmd  *exec.Cmd
	done chan struct{}

	Args []string // more flags, e.g. -shared-key-file
}

// Record is one record the receiver got.
type Record struct {
	Tag    string         `json:"tag"`
	TimeNS int64          `json:"time_ns"`
	Fields map[string]any `json:"record"`
	LogB64 string         `json:"log_b64"`
}

// Log returns the exact bytes of the record's log field.
func (r Record) Log() []byte {
	b, _ := base64.StdEncoding.DecodeString(r.LogB64)
	return b
}

// Str returns a field as text, "" when absent.
func (r Record) Str(k string) string {
	if v, ok := r.Fields[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// FluentdBin finds the receiver built by `scripts/peers.sh fluentd` under the repository
// root.
func FluentdBin(root string) (string, error) {
	bin := filepath.Join(root, ".peers", "bin", "fluentd-receiver")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found: run `make peers` (scripts/peers.sh fluentd builds it)", bin)
	}
	return bin, nil
}

// StartFluentd starts the receiver bin on a free loopback port, with its files in dir and
// the flags args.
func StartFluentd(bin, dir string, args ...string) (*Fluentd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &Fluentd{Bin: bin, Dir: dir, Port: FreePort(), Out: filepath.Join(dir, "records.jsonl"), Args: args}
	f.Addr = fmt.Sprintf("127.0.0.1:%d", f.Port)
	return f, f.Start()
}

// Start starts (or restarts) the receiver on the same port and file; it returns when the
// port accepts connections.
func (f *Fluentd) Start() error {
	logf, err := os.OpenFile(filepath.Join(f.Dir, "receiver.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f.cmd = exec.Command(f.Bin, append([]string{"-listen", f.Addr, "-out", f.Out}, f.Args...)...)
	f.cmd.Stdout, f.cmd.Stderr = logf, logf
	if err := f.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	f.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); logf.Close(); close(done) }(f.cmd, f.done)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-f.done:
			return fmt.Errorf("fluentd-receiver exited at start (log in %s)", f.Dir)
		default:
		}
		if c, err := net.DialTimeout("tcp", f.Addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("fluentd-receiver did not listen on %s (log in %s)", f.Addr, f.Dir)
}

// Stop stops the receiver gracefully (every record it acknowledged is in Out) and waits.
func (f *Fluentd) Stop() {
	if f.cmd == nil {
		return
	}
	_ = f.cmd.Process.Signal(os.Interrupt)
	select {
	case <-f.done:
	case <-time.After(15 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
	f.cmd = nil
}

// Pid returns the receiver's process ID, 0 when stopped.
func (f *Fluentd) Pid() int {
	if f.cmd == nil || f.cmd.Process == nil {
		return 0
	}
	return f.cmd.Process.Pid
}

// Records reads every record received so far; a line still being written is left out.
func (f *Fluentd) Records() ([]Record, error) {
	b, err := os.ReadFile(f.Out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}
