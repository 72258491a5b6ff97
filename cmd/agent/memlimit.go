package main

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime lets the heap grow to twice what the last collection found live before
// it collects again, and knows nothing of the container's memory limit: a burst of
// garbage (a container whose every event carries megabytes of labels) can take the agent
// past the limit and get it killed although it holds much less. Unless GOMEMLIMIT says
// otherwise, the agent sets the runtime's soft limit to memoryLimitShare of the memory
// limit of its cgroup (deploy/global-stack.yml's 128M: 96 MiB), so that the runtime
// collects harder as it nears the limit. Without a cgroup limit nothing is set.
const memoryLimitShare = 0.75

// setMemoryLimit applies the soft limit and returns it in bytes (0: none set by the agent;
// the runtime's own, from GOMEMLIMIT, when that is set).
func setMemoryLimit(cgroupRoot, procSelfCgroup string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	limit := cgroupMemoryLimit(cgroupRoot, procSelfCgroup)
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit is the memory limit of the cgroup this process is in, 0 for none:
// memory.max (cgroup v2) or memory/memory.limit_in_bytes (v1), under the process's own
// cgroup path in /proc/self/cgroup, or at the root of the mount, which is the container's
// own cgroup when the cgroup namespace (v2) or Docker's mount (v1) shows it there.
func cgroupMemoryLimit(root, procSelfCgroup string) int64 {
	f, err := os.Open(procSelfCgroup)
	if err != nil {
		return 0
	}
	defer f.Close()
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path; v2 is "0::/path".
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"), filepath.Join(root, "memory.max"))
		case strings.Contains(","+parts[1]+",", ",memory,"):
			candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"),
				filepath.Join(root, "memory", "memory.limit_in_bytes"))
		}
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 says "no limit" with a number near 2^63 rounded down to a page.
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0
		}
		return v
	}
	return 0
}
