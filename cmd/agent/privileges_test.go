package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoNewPrivileges runs the bit-setting in a child process (the bit cannot be unset,
// and this test process must keep its own): the child reports the bit set, as /proc shows.
func TestNoNewPrivileges(t *testing.T) {
	if os.Getenv("LOOKOUT_TEST_NNP_CHILD") == "1" {
		if err := noNewPrivileges(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile("/proc/self/status")
		if !strings.Contains(string(b), "NoNewPrivs:\t1") || !currentIdentity().NoNewPrivs {
			t.Fatalf("no_new_privs not set: identity %+v", currentIdentity())
		}
		return
	}
	if currentIdentity().NoNewPrivs {
		// Already set on this process (a CI runner with no-new-privileges): setting it
		// again must succeed and leave it set.
		if err := noNewPrivileges(); err != nil || !currentIdentity().NoNewPrivs {
			t.Fatalf("noNewPrivileges: %v, identity %+v", err, currentIdentity())
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
