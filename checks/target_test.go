package checks

import (
	"testing"

	"github.com/lookout-agent/lookout/labels"
)

// A Swarm task's overlay addresses cannot be reached from the host's network namespace:
// an agent there (no networks of its own) probes the task's docker_gwbridge address; an
// agent on a network the task shares, or a check naming a network, still uses that.
func TestTargetSwarmTaskFromTheHost(t *testing.T) {
	c := testContainer("t", true, nil)
	c.Service, c.Networks, c.BridgeIP = "web", map[string]string{"shop_net": "10.0.1.5", "ingress": "10.0.0.5"}, "172.18.0.4"
	for _, tc := range []struct {
		chk   labels.Check
		agent []string
		want  string
	}{
		{labels.Check{Type: "http", Port: 80}, nil, "172.18.0.4:80"},
		{labels.Check{Type: "http", Port: 80}, []string{"shop_net"}, "10.0.1.5:80"},
		{labels.Check{Type: "http", Port: 80, Network: "shop_net"}, nil, "10.0.1.5:80"},
	} {
		if got, err := Target(c, tc.chk, "", tc.agent, nil); got != tc.want || err != nil {
			t.Errorf("agent on %v, check %+v: %q, %v; want %q", tc.agent, tc.chk, got, err, tc.want)
		}
	}
	c.BridgeIP = "" // not a Swarm task: its first network, as before
	if got, _ := Target(c, labels.Check{Type: "http", Port: 80}, "", nil, nil); got != "10.0.1.5:80" {
		t.Errorf("without a bridge address: %q", got)
	}
}
