package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/lookout-agent/lookout/config"
)

// TestNoNewPrivileges sets the bit in a child process (it cannot be unset, and this test
// process must keep its own). A static build sets it on every thread; a cgo build (this
// -race test binary) on the calling thread only, and says so.
func TestNoNewPrivileges(t *testing.T) {
	if os.Getenv("LOOKOUT_TEST_NNP_CHILD") == "1" {
		runtime.LockOSThread()
		err := noNewPrivileges()
		switch {
		case err == nil:
			if !currentIdentity().NoNewPrivs {
				t.Fatalf("no_new_privs not on every thread: %+v", currentIdentity())
			}
		case errors.Is(err, errThisThreadOnly):
			if got := statusField("/proc/thread-self/status", "NoNewPrivs"); got != "1" {
				t.Fatalf("no_new_privs of the calling thread: %q, want 1", got)
			}
		default:
			t.Fatal(err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoNewPrivileges$", "-test.v")
	cmd.Env = append(os.Environ(), "LOOKOUT_TEST_NNP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if id := currentIdentity(); id.UID != os.Geteuid() || id.CapEff == "" {
		t.Errorf("identity %+v", id)
	}
}

func TestCheckStateFiles(t *testing.T) {
	dir := t.TempDir()
	hb := filepath.Join(dir, "heartbeat")
	if err := os.WriteFile(hb, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	checkStateFiles(config.Config{StateDir: dir, HeartbeatFile: hb}, log)
	if _, err := os.Stat(hb); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the earlier agent's heartbeat file is still there (%v)", err)
	}
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("%d log entries for a writable state directory: %v", n, hook.LastEntry())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left in the state directory: %v", entries)
	}
	// A directory nobody may write, root included.
	checkStateFiles(config.Config{StateDir: "/proc"}, log)
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.ErrorLevel || !strings.Contains(e.Message, "chown -R") {
		t.Errorf("unwritable state directory: %v, want an error naming the chown", e)
	}
}
