package inventory

import (
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/lookout-agent/lookout/labels"
)

// Engine describes the Docker Engine the agent watches.
type Engine struct {
	Host          string // engine_host: the node's hostname as Docker reports it
	ServerVersion string
	APIVersion    string
	SwarmNodeID   string
}

// Container is what the inventory knows of one container: metadata and last-seen state.
type Container struct {
	ID           string
	Name         string // without the leading '/'
	Image        string // as configured, e.g. "redis:7" or "repo/app@sha256:…"
	ImageName    string // Telegraf's container_image
	ImageVersion string // Telegraf's container_version
	Labels       map[string]string
	Config       labels.Config
	Monitored    bool

	// Swarm task metadata (empty outside Swarm).
	Service, ServiceID, Stack, TaskID, TaskName, Slot, NodeID string

	NetworkMode string
	Networks    map[string]string // network name -> IPv4 address
	// BridgeIP is a Swarm task's address on docker_gwbridge, the bridge its traffic to
	// the node and beyond leaves by: the source address of what it sends to an address of
	// the node, such as the bridge's gateway (172.18.0.1). Docker's container inspection
	// does not show it; the inventory reads it from the network's inspection.
	BridgeIP string
	Created  time.Time

	State        container.State
	RestartCount int
	StartedAt    time.Time
	FinishedAt   time.Time

	HasHealthcheck bool
	HealthInterval time.Duration

	Tty bool // the container has a terminal: its logs are one raw stream, not stdout/stderr frames
	// LogDriver is the container's log driver ("json-file", "local", "journald", …).
	LogDriver string
}

// SeriesName is the container_name tag: stable across restarts and task re-creation.
// A Swarm task's container is named after its service and slot ("web.2"; a global
// service's task after its service alone, the node being a tag), not after the task ID,
// so series do not multiply with every new task (telegraf #3616). Other containers keep
// their name.
func (c *Container) SeriesName() string {
	if c.Service == "" {
		return c.Name
	}
	if c.Slot != "" {
		return c.Service + "." + c.Slot
	}
	return c.Service
}

// FromInspect builds a Container from an inspection; monitorAll is the agent setting that
// decides for containers without lookout.enable.
func FromInspect(in container.InspectResponse, monitorAll bool) *Container {
	c := &Container{Networks: map[string]string{}}
	c.ID = in.ID
	c.Name = strings.TrimPrefix(in.Name, "/")
	c.RestartCount = in.RestartCount
	c.Created = parseTime(in.Created)
	if in.State != nil {
		c.State = *in.State
		c.StartedAt = parseTime(in.State.StartedAt)
		c.FinishedAt = parseTime(in.State.FinishedAt)
	}
	if in.HostConfig != nil {
		c.NetworkMode = string(in.HostConfig.NetworkMode)
		c.LogDriver = in.HostConfig.LogConfig.Type
	}
	if in.Config != nil {
		c.Image = in.Config.Image
		c.Labels = in.Config.Labels
		c.Tty = in.Config.Tty
		if hc := in.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			c.HasHealthcheck = true
			c.HealthInterval = hc.Interval
			if c.HealthInterval == 0 {
				c.HealthInterval = 30 * time.Second
			}
		}
	}
	c.ImageName, c.ImageVersion = ParseImage(c.Image)
	if in.NetworkSettings != nil {
		for name, ep := range in.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				c.Networks[name] = ep.IPAddress.String()
			}
		}
	}
	l := c.Labels
	c.Service = l["com.docker.swarm.service.name"]
	c.ServiceID = l["com.docker.swarm.service.id"]
	c.TaskID = l["com.docker.swarm.task.id"]
	c.TaskName = l["com.docker.swarm.task.name"]
	c.NodeID = l["com.docker.swarm.node.id"]
	c.Stack = l["com.docker.stack.namespace"]
	c.Slot = taskSlot(c.Service, c.TaskName, c.NodeID)
	c.Config = labels.Parse(l)
	c.Monitored = c.Config.Monitored(monitorAll)
	c.Labels = keptLabels(l)
	return c
}

// keptLabels is what a Container keeps of its labels once they are parsed: Lookout's own
// (lookout.*, each value cut to labels.MaxValueSize, which no label may pass anyway) and
// Docker's (com.docker.*). A container's other labels can be megabytes (Docker bounds
// neither their size nor their number), and every inspection makes a new Container that
// subscribers hold until the next.
func keptLabels(l map[string]string) map[string]string {
	kept := func(k string) bool { return strings.HasPrefix(k, labels.Prefix) || strings.HasPrefix(k, "com.docker.") }
	n, all := 0, true
	for k, v := range l {
		if kept(k) {
			n++
		}
		all = all && kept(k) && len(v) <= labels.MaxValueSize
	}
	if all {
		return l
	}
	out := make(map[string]string, n)
	for k, v := range l {
		if kept(k) {
			out[k] = strings.Clone(v[:min(len(v), labels.MaxValueSize)])
		}
	}
	return out
}

// taskSlot reads the slot from a task name "service.slot.taskid"; a global service's
// task is "service.nodeid.taskid" and has no slot.
func taskSlot(service, taskName, nodeID string) string {
	rest, ok := strings.CutPrefix(taskName, service+".")
	if service == "" || !ok {
		return ""
	}
	slot, _, _ := strings.Cut(rest, ".")
	if slot == nodeID {
		return ""
	}
	for _, r := range slot {
		if r < '0' || r > '9' {
			return ""
		}
	}
	return slot
}

// ParseImage splits an image reference into name and version as Telegraf does:
// "registry:5000/app:1.2" -> ("registry:5000/app", "1.2"); no tag -> "latest";
// a digest reference keeps the digest as version, and its name drops any tag
// ("app:1.2@sha256:…", as Swarm pins a service's image, -> ("app", "sha256:…")).
func ParseImage(image string) (name, version string) {
	if n, digest, ok := strings.Cut(image, "@"); ok {
		if colon := strings.LastIndex(n, ":"); colon > strings.LastIndex(n, "/") {
			n = n[:colon]
		}
		return n, digest
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, "latest"
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// Tags returns the tags every point about c carries: Telegraf's container tags, the Swarm
// tags, and the container's lookout.tags.*.
func (c *Container) Tags(e Engine) map[string]string {
	t := map[string]string{
		"engine_host":       e.Host,
		"server_version":    e.ServerVersion,
		"container_name":    c.SeriesName(),
		"container_image":   c.ImageName,
		"container_version": c.ImageVersion,
	}
	if c.Service != "" {
		t["service"] = c.Service
		t["stack"] = c.Stack
		t["task_slot"] = c.Slot
		t["node"] = e.Host
	}
	for k, v := range c.Config.Tags {
		t[k] = v
	}
	return t
}

// SortedNetworks returns the network names of c in order.
func (c *Container) SortedNetworks() []string {
	out := make([]string, 0, len(c.Networks))
	for n := range c.Networks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
