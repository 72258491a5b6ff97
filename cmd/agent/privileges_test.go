package main

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
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
