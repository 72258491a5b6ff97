package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// PeerBin returns the path of a peer program that `make peers` (scripts/peers.sh
// <script>) builds into root/.peers/bin.
func PeerBin(root, name, script string) (string, error) {
	p := filepath.Join(root, ".peers", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run `make peers` (scripts/peers.sh %s builds it)", p, script)
	}
	return p, nil
}

// Telegraf is a real Telegraf running a configuration, its output in Log.
type Telegraf struct {
	Log  string
	proc *process
}

// StartTelegraf runs bin with the configuration conf, its files in dir. Telegraf has no
// readiness endpoint: it is started when the program runs.
func StartTelegraf(bin, dir, conf string) (*Telegraf, error) {
	path := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	t := &Telegraf{Log: filepath.Join(dir, "telegraf.log")}
	var err error
	t.proc, err = startProcess("telegraf", t.Log, nil, func() bool { return true }, time.Minute, bin, "--config", path)
	return t, err
}

// Stop interrupts Telegraf (it flushes its outputs) and kills it after 15 s.
func (t *Telegraf) Stop() { t.proc.stop(15 * time.Second) }

// Logs is the end of what Telegraf wrote.
func (t *Telegraf) Logs() string { return logTail(t.Log) }
