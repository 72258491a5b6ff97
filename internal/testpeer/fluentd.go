package testpeer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
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
	proc *process

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
func FluentdBin(root string) (string, error) { return PeerBin(root, "fluentd-receiver", "fluentd") }

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
	ready := func() bool {
		c, err := net.DialTimeout("tcp", f.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	var err error
	f.proc, err = startProcess("fluentd-receiver", filepath.Join(f.Dir, "receiver.log"), nil, ready, 30*time.Second,
		f.Bin, append([]string{"-listen", f.Addr, "-out", f.Out}, f.Args...)...)
	return err
}

// Stop stops the receiver gracefully (every record it acknowledged is in Out) and waits.
func (f *Fluentd) Stop() {
	f.proc.stop(15 * time.Second)
	f.proc = nil
}

// Pid returns the receiver's process ID, 0 when stopped.
func (f *Fluentd) Pid() int { return f.proc.pid() }

// Records reads every record received so far; a line still being written is left out.
func (f *Fluentd) Records() ([]Record, error) {
	out, _, err := f.RecordsFrom(0)
	return out, err
}

// RecordsFrom reads the records received from byte off of the records file on, and
// returns the offset to read the next ones from: a line still being written is left for
// then.
func (f *Fluentd) RecordsFrom(off int64) ([]Record, int64, error) {
	file, err := os.Open(f.Out)
	if os.IsNotExist(err) {
		return nil, off, nil
	}
	if err != nil {
		return nil, off, err
	}
	defer file.Close()
	b, err := io.ReadAll(io.NewSectionReader(file, off, 1<<62))
	if err != nil {
		return nil, off, err
	}
	var out []Record
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return out, off, nil
		}
		var r Record
		if json.Unmarshal(b[:i], &r) == nil {
			out = append(out, r)
		}
		b, off = b[i+1:], off+int64(i)+1
	}
}
