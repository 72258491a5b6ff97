package main

import (
	"bufio"
	"bytes"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// noNewPrivileges sets the no_new_privs bit of the agent's process (PR_SET_NO_NEW_PRIVS):
// nothing the agent runs, now or later, can gain privileges through a setuid binary or
// file capabilities. A Swarm service cannot ask for it (`docker stack deploy` ignores
// security_opt: moby/moby#41371), so the agent asks for itself, before it starts anything.
func noNewPrivileges() error {
	return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}

// identity is what the agent runs as, for its start log line: user and group IDs,
// supplementary groups, effective capabilities (hex, as /proc shows them) and the
// no_new_privs bit.
type identity struct {
	UID, GID   int
	Groups     []int
	CapEff     string
	NoNewPrivs bool
}

func currentIdentity() identity {
	id := identity{UID: os.Geteuid(), GID: os.Getegid()}
	id.Groups, _ = os.Getgroups()
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		id.NoNewPrivs = v == 1
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
				id.CapEff = strings.TrimSpace(v)
			}
		}
	}
	return id
}
