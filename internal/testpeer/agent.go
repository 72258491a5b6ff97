package testpeer

import (
	"os/exec"
	"strings"
)

// AgentVersion is what `bin version` says of itself without the program name (the git
// describe it was built from, then the Go version), or bin itself when it says nothing:
// the benches name the two Lookout binaries they compare with it.
func AgentVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "lookout "))
	if err != nil || v == "" {
		return bin
	}
	if i := strings.IndexByte(v, ' '); i > 0 {
		v = v[:i]
	}
	return bin + " (" + v + ")"
}
