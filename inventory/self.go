package inventory

import (
	"os"
	"regexp"
)

var containerIDRe = regexp.MustCompile(`/containers/([0-9a-f]{64})/`)

// SelfContainerID returns the ID of the container the agent runs in, read from
// /proc/self/mountinfo (Docker bind-mounts the container's hostname and resolv.conf from
// /var/lib/docker/containers/<id>/), or "" when the agent does not run in a container.
func SelfContainerID() string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	return containerIDFromMountinfo(string(b))
}

func containerIDFromMountinfo(s string) string {
	if m := containerIDRe.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}
