package inventory

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/lookout-agent/lookout/labels"
)

func TestParseImage(t *testing.T) {
	const digest = "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3"
	tests := []struct {
		image, name, version string
	}{
		{"registry:5000/app:1.2", "registry:5000/app", "1.2"},
		{"registry:5000/app", "registry:5000/app", "latest"}, // the port is not a tag
		{"localhost/app:dev", "localhost/app", "dev"},
		{"app", "app", "latest"},
		{"app:1.2", "app", "1.2"},
		{"redis:7-alpine", "redis", "7-alpine"},
		{"app@" + digest, "app", digest},
		{"registry:5000/team/app@" + digest, "registry:5000/team/app", digest},
		// What a Swarm task's Config.Image looks like: the tag stays out of the name.
		{"app:1.2@" + digest, "app", digest},
		{"registry:5000/team/app:1.2@" + digest, "registry:5000/team/app", digest},
		{"a/b/c:tag", "a/b/c", "tag"},
		{"a/b/c", "a/b/c", "latest"},
		{"quay.io:4443/coreos/etcd:v3.5", "quay.io:4443/coreos/etcd", "v3.5"},
		{"", "", "latest"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			name, version := ParseImage(tt.image)
			if name != tt.name || version != tt.version {
				t.Errorf("ParseImage(%q) = (%q, %q), want (%q, %q)", tt.image, name, version, tt.name, tt.version)
			}
		})
	}
}

func TestTaskSlot(t *testing.T) {
	const node = "k3y8q2fz0w1h6n9p4r7t5v2xa"
	tests := []struct {
		name                      string
		service, taskName, nodeID string
		want                      string
	}{
		{"replicated", "web", "web.3.taskid", node, "3"},
		{"replicated two digits", "stack_web", "stack_web.12.x9f2k1", node, "12"},
		{"replicated without node label", "web", "web.3.taskid", "", "3"},
		{"global", "web", "web." + node + ".taskid", node, ""},
		{"global without node label", "web", "web." + node + ".taskid", "", ""},
		{"not swarm", "", "", "", ""},
		{"not swarm with a task name", "", "web.3.taskid", "", ""},
		{"task of another service", "web", "api.3.taskid", node, ""},
		{"service name is a prefix of another", "web", "webapp.3.taskid", node, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := taskSlot(tt.service, tt.taskName, tt.nodeID); got != tt.want {
				t.Errorf("taskSlot(%q, %q, %q) = %q, want %q", tt.service, tt.taskName, tt.nodeID, got, tt.want)
			}
		})
	}
}

func swarmLabels(service, slotOrNode, taskID, nodeID string) map[string]string {
	return map[string]string{
		"com.docker.swarm.service.name": service,
		"com.docker.swarm.service.id":   "svc-" + service,
		"com.docker.swarm.task.id":      taskID,
		"com.docker.swarm.task.name":    service + "." + slotOrNode + "." + taskID,
		"com.docker.swarm.node.id":      nodeID,
		"com.docker.stack.namespace":    "shop",
		"lookout.enable":                "true",
	}
}

func TestSeriesNameStableAcrossTasks(t *testing.T) {
	const node = "k3y8q2fz0w1h6n9p4r7t5v2xa"
	inspect := func(name string, l map[string]string) *Container {
		return FromInspect(container.InspectResponse{
			ID: "id-" + name, Name: "/" + name,
			Config: &container.Config{Image: "app:1", Labels: l},
		}, false)
	}

	a := inspect("shop_web.2.task1", swarmLabels("shop_web", "2", "task1", node))
	b := inspect("shop_web.2.task2", swarmLabels("shop_web", "2", "task2", node))
	if a.SeriesName() != "shop_web.2" || b.SeriesName() != "shop_web.2" {
		t.Errorf("replicated: series names %q and %q, want shop_web.2 for both", a.SeriesName(), b.SeriesName())
	}
	other := inspect("shop_web.3.task3", swarmLabels("shop_web", "3", "task3", node))
	if other.SeriesName() != "shop_web.3" {
		t.Errorf("slot 3: series name %q, want shop_web.3", other.SeriesName())
	}

	g1 := inspect("shop_agent."+node+".task1", swarmLabels("shop_agent", node, "task1", node))
	g2 := inspect("shop_agent."+node+".task2", swarmLabels("shop_agent", node, "task2", node))
	if g1.SeriesName() != "shop_agent" || g2.SeriesName() != "shop_agent" {
		t.Errorf("global: series names %q and %q, want shop_agent for both", g1.SeriesName(), g2.SeriesName())
	}

	plain := inspect("my-redis", map[string]string{"lookout.enable": "true"})
	if plain.SeriesName() != "my-redis" {
		t.Errorf("plain container: series name %q, want my-redis", plain.SeriesName())
	}
}

func TestFromInspect(t *testing.T) {
	const node = "k3y8q2fz0w1h6n9p4r7t5v2xa"
	started := time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC)
	finished := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	l := swarmLabels("shop_web", "2", "t4sk", node)
	l["lookout.tags.team"] = "payments"
	in := container.InspectResponse{

		ID:           "abc123",
		Name:         "/shop_web.2.t4sk",
		Created:      "2024-05-01T09:59:59.5Z",
		RestartCount: 3,
		State: &container.State{
			Status: container.StateRunning, Running: true, Pid: 42,
			StartedAt:  started.Format(time.RFC3339Nano),
			FinishedAt: finished.Format(time.RFC3339Nano),
			Health:     &container.Health{Status: container.Healthy},
		},
		HostConfig: &container.HostConfig{NetworkMode: "shop_default"},
		Config: &container.Config{
			Image:  "registry:5000/shop/web:1.2",
			Labels: l,
			Healthcheck: &container.HealthConfig{
				Test: []string{"CMD", "/healthz"}, Interval: 5 * time.Second,
			},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"shop_default": {IPAddress: netip.MustParseAddr("10.0.1.5")},
			"ingress":      {IPAddress: netip.MustParseAddr("10.0.0.7")},
			"none":         {}, // no address: left out
			"nil":          nil,
		}},
	}
	c := FromInspect(in, false)

	checks := []struct {
		what      string
		got, want any
	}{
		{"ID", c.ID, "abc123"},
		{"Name", c.Name, "shop_web.2.t4sk"},
		{"Image", c.Image, "registry:5000/shop/web:1.2"},
		{"ImageName", c.ImageName, "registry:5000/shop/web"},
		{"ImageVersion", c.ImageVersion, "1.2"},
		{"Service", c.Service, "shop_web"},
		{"ServiceID", c.ServiceID, "svc-shop_web"},
		{"Stack", c.Stack, "shop"},
		{"TaskID", c.TaskID, "t4sk"},
		{"TaskName", c.TaskName, "shop_web.2.t4sk"},
		{"Slot", c.Slot, "2"},
		{"NodeID", c.NodeID, node},
		{"SeriesName", c.SeriesName(), "shop_web.2"},
		{"NetworkMode", c.NetworkMode, "shop_default"},
		{"Networks", c.Networks, map[string]string{"shop_default": "10.0.1.5", "ingress": "10.0.0.7"}},
		{"SortedNetworks", c.SortedNetworks(), []string{"ingress", "shop_default"}},
		{"Created", c.Created, time.Date(2024, 5, 1, 9, 59, 59, 5e8, time.UTC)},
		{"StartedAt", c.StartedAt, started},
		{"FinishedAt", c.FinishedAt, finished},
		{"RestartCount", c.RestartCount, 3},
		{"State.Pid", c.State.Pid, 42},
		{"State.Health.Status", c.State.Health.Status, container.Healthy},
		{"HasHealthcheck", c.HasHealthcheck, true},
		{"HealthInterval", c.HealthInterval, 5 * time.Second},
		{"Monitored", c.Monitored, true},
		{"Config.Tags", c.Config.Tags, map[string]string{"team": "payments"}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.what, ch.got, ch.want)
		}
	}
}

func TestFromInspectZeroTimes(t *testing.T) {
	c := FromInspect(container.InspectResponse{
		ID: "x", Name: "/x", State: &container.State{
			Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "",
		},
		Config: &container.Config{Image: "app"},
	}, true)
	if !c.StartedAt.IsZero() || !c.FinishedAt.IsZero() || !c.Created.IsZero() {
		t.Errorf("Docker's zero times should be zero: started %v finished %v created %v", c.StartedAt, c.FinishedAt, c.Created)
	}
}

func TestFromInspectEmpty(t *testing.T) {
	// A response without its optional parts must not panic.
	c := FromInspect(container.InspectResponse{}, true)
	if c.Name != "" || c.HasHealthcheck || c.Service != "" || c.ImageVersion != "latest" || !c.Monitored {
		t.Errorf("empty inspect: %+v", c)
	}
}

func TestFromInspectHealthcheck(t *testing.T) {
	tests := []struct {
		name         string
		hc           *container.HealthConfig
		want         bool
		wantInterval time.Duration
	}{
		{"none configured", nil, false, 0},
		{"empty test inherits nothing", &container.HealthConfig{}, false, 0},
		{"disabled with NONE", &container.HealthConfig{Test: []string{"NONE"}, Interval: time.Second}, false, 0},
		{"CMD with interval", &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: 2 * time.Second}, true, 2 * time.Second},
		{"CMD-SHELL default interval", &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}}, true, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FromInspect(container.InspectResponse{
				ID: "x", Name: "/x",
				Config: &container.Config{Image: "app", Healthcheck: tt.hc},
			}, true)
			if c.HasHealthcheck != tt.want || c.HealthInterval != tt.wantInterval {
				t.Errorf("HasHealthcheck=%v HealthInterval=%v, want %v %v", c.HasHealthcheck, c.HealthInterval, tt.want, tt.wantInterval)
			}
		})
	}
}

func TestFromInspectMonitored(t *testing.T) {
	tests := []struct {
		name       string
		labels     map[string]string
		monitorAll bool
		want       bool
	}{
		{"no label", nil, false, false},
		{"no label, monitor all", nil, true, true},
		{"enable=true", map[string]string{"lookout.enable": "true"}, false, true},
		{"enable=TRUE with spaces", map[string]string{"lookout.enable": " TRUE "}, false, true},
		{"enable=true, monitor all", map[string]string{"lookout.enable": "true"}, true, true},
		{"enable=false", map[string]string{"lookout.enable": "false"}, false, false},
		{"enable=false opts out of monitor all", map[string]string{"lookout.enable": "false"}, true, false},
		{"bad enable value falls back to the setting", map[string]string{"lookout.enable": "yes"}, false, false},
		{"bad enable value, monitor all", map[string]string{"lookout.enable": "yes"}, true, true},
		{"only tags", map[string]string{"lookout.tags.team": "a"}, false, false},
		{"only tags, monitor all", map[string]string{"lookout.tags.team": "a"}, true, true},
		{"other labels", map[string]string{"traefik.enable": "true"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FromInspect(container.InspectResponse{
				ID: "x", Name: "/x",
				Config: &container.Config{Image: "app", Labels: tt.labels},
			}, tt.monitorAll)
			if c.Monitored != tt.want {
				t.Errorf("Monitored = %v, want %v", c.Monitored, tt.want)
			}
		})
	}
}

func TestTags(t *testing.T) {
	const node = "k3y8q2fz0w1h6n9p4r7t5v2xa"
	e := Engine{Host: "node-1", ServerVersion: "28.5.2", APIVersion: "1.51", SwarmNodeID: node}

	l := swarmLabels("shop_web", "2", "t4sk", node)
	l["lookout.tags.team"] = "payments"
	l["lookout.tags.tier"] = "front"
	l["lookout.tags.container_name"] = "hijack" // reserved: a problem, not a tag
	c := FromInspect(container.InspectResponse{
		ID: "x", Name: "/shop_web.2.t4sk",
		Config: &container.Config{Image: "registry:5000/shop/web:1.2", Labels: l},
	}, false)
	want := map[string]string{
		"engine_host":       "node-1",
		"server_version":    "28.5.2",
		"container_name":    "shop_web.2",
		"container_image":   "registry:5000/shop/web",
		"container_version": "1.2",
		"service":           "shop_web",
		"stack":             "shop",
		"task_slot":         "2",
		"node":              "node-1",
		"team":              "payments",
		"tier":              "front",
	}
	if got := c.Tags(e); !reflect.DeepEqual(got, want) {
		t.Errorf("swarm Tags =\n%v\nwant\n%v", got, want)
	}
	if len(c.Config.Problems) != 1 || c.Config.Problems[0].Key != "lookout.tags.container_name" {
		t.Errorf("problems = %v, want one about lookout.tags.container_name", c.Config.Problems)
	}

	// A global service's task: no slot.
	g := FromInspect(container.InspectResponse{
		ID: "y", Name: "/shop_agent." + node + ".t5",
		Config: &container.Config{Image: "agent:2", Labels: swarmLabels("shop_agent", node, "t5", node)},
	}, false)
	gt := g.Tags(e)
	if gt["container_name"] != "shop_agent" || gt["task_slot"] != "" || gt["node"] != "node-1" || gt["service"] != "shop_agent" {
		t.Errorf("global Tags = %v", gt)
	}

	// A plain container: no Swarm tags at all.
	p := FromInspect(container.InspectResponse{
		ID: "z", Name: "/my-redis",
		Config: &container.Config{Image: "redis", Labels: map[string]string{"lookout.tags.team": "data"}},
	}, true)
	wantPlain := map[string]string{
		"engine_host": "node-1", "server_version": "28.5.2", "container_name": "my-redis",
		"container_image": "redis", "container_version": "latest", "team": "data",
	}
	if got := p.Tags(e); !reflect.DeepEqual(got, wantPlain) {
		t.Errorf("plain Tags =\n%v\nwant\n%v", got, wantPlain)
	}
}

// A Container keeps Lookout's and Docker's labels, each at most labels.MaxValueSize, and
// its label problems at most the start of a huge value: every inspection makes a new
// Container, and megabyte labels (Docker bounds neither size nor number) must not stay
// alive with each.
func TestFromInspectKeepsBoundedLabels(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	in := container.InspectResponse{ID: "abc", Name: "/big", Config: &container.Config{Labels: map[string]string{
		"lookout.enable": "true", "lookout.tags.big": huge, "lookout.check.web": "http://:8080/",
		"com.docker.swarm.service.name": "svc", "org.example.notes": huge, "other": "x",
	}}}
	c := FromInspect(in, false)
	want := map[string]string{"lookout.enable": "true", "lookout.tags.big": huge[:labels.MaxValueSize],
		"lookout.check.web": "http://:8080/", "com.docker.swarm.service.name": "svc"}
	if !reflect.DeepEqual(c.Labels, want) {
		t.Errorf("kept labels %d, want %d: Lookout's and Docker's, each cut to %d bytes", len(c.Labels), len(want), labels.MaxValueSize)
	}
	if len(c.Config.Problems) != 1 || len(c.Config.Problems[0].Value) > 128 ||
		!strings.Contains(c.Config.Problems[0].Error(), "(1048576 bytes)") {
		t.Errorf("problems %v: want the 1 MiB tag's, its value cut to 128 bytes and its size said", c.Config.Problems)
	}
	if !c.Monitored || c.Service != "svc" || len(c.Config.Checks) != 1 {
		t.Errorf("monitored %v, service %q, %d checks: the labels are parsed before they are cut", c.Monitored, c.Service, len(c.Config.Checks))
	}
	small := map[string]string{"lookout.enable": "true", "com.docker.stack.namespace": "s"}
	if c := FromInspect(container.InspectResponse{Config: &container.Config{Labels: small}}, false); !reflect.DeepEqual(c.Labels, small) {
		t.Errorf("labels %v, want %v kept as they are", c.Labels, small)
	}
}
