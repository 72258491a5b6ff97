package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/lookout-agent/lookout/config"
)

// errThisThreadOnly: a cgo build (the -race test builds) cannot change every thread at
// once (syscall.AllThreadsSyscall), so no_new_privs was set on the calling thread only.
var errThisThreadOnly = errors.New("no_new_privs set on one thread only: a cgo build cannot set it on every thread")

// noNewPrivileges sets the no_new_privs bit on every thread of the agent's process
// (PR_SET_NO_NEW_PRIVS is per thread, and Go runs goroutines on several): nothing the
// agent runs, now or later, can gain privileges through a setuid binary or file
// capabilities. A Swarm service cannot ask for it (`docker stack deploy` ignores
// security_opt: moby/moby#41371), so the agent asks for itself, before it starts anything.
func noNewPrivileges() error {
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	switch errno {
	case 0:
		return nil
	case syscall.ENOTSUP:
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
		return errThisThreadOnly
	default:
		return errno
	}
}

// identity is what the agent runs as, for its start log line: user and group IDs,
// supplementary groups, effective capabilities (hex, as /proc shows them) and whether
// every thread has the no_new_privs bit.
type identity struct {
	UID, GID   int
	Groups     []int
	CapEff     string
	NoNewPrivs bool
}

func currentIdentity() identity {
	id := identity{UID: os.Geteuid(), GID: os.Getegid()}
	id.Groups, _ = os.Getgroups()
	id.CapEff = statusField("/proc/self/status", "CapEff")
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	id.NoNewPrivs = len(tasks) > 0
	for _, t := range tasks {
		if statusField(t, "NoNewPrivs") != "1" {
			id.NoNewPrivs = false
		}
	}
	return id
}

// statusField returns a field of a /proc status file, "" when absent.
func statusField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkStateFiles removes the heartbeat file an earlier agent left (it lives in the state
// volume, and must not vouch for this agent before it has connected) and says, as an
// error naming the fix, when the state directory cannot be written: a volume a root agent
// wrote, now used by the non-root image.
func checkStateFiles(cfg config.Config, log logrus.FieldLogger) {
	if cfg.HeartbeatFile != "" {
		if err := os.Remove(cfg.HeartbeatFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.WithError(err).Warn("heartbeat file: cannot remove the one an earlier agent left")
		}
	}
	if cfg.StateDir == "" {
		return
	}
	if _, err := os.Stat(cfg.StateDir); err != nil {
		return // made when first needed
	}
	f, err := os.CreateTemp(cfg.StateDir, ".write-test-*")
	if err != nil {
		log.WithError(err).WithField("state_dir", cfg.StateDir).WithField("uid", os.Geteuid()).
			Errorf("the state directory cannot be written: log positions, the disk queue and the heartbeat cannot be saved;"+
				" if a root agent wrote it, hand it over once: chown -R %d:%d on the volume", os.Geteuid(), os.Getegid())
		return
	}
	f.Close()
	_ = os.Remove(f.Name())
}
