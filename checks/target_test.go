package checks

import (
	"errors"
	"strings"
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

// A host written in a label reaches neither the node, loopback, link-local nor metadata
// addresses, even when the allowlist names it; other hosts need the allowlist.
func TestTargetRefusals(t *testing.T) {
	c := testContainer("t", true, nil)
	hosts := []string{"127.0.0.1", "::1", "0.0.0.0", "::", "2130706433", "0177.0.0.1", "0x7f.1", "::ffff:127.0.0.1",
		"169.254.169.254", "fd00:ec2::254", "fe80::1", "169.254.3.4", "metadata.google.internal", "db.example", "192.0.2.10"}
	allowed := map[string]bool{}
	for _, h := range hosts {
		allowed[h] = true
	}
	for _, tc := range []struct {
		host    string
		allowed map[string]bool
		want    string // in the refusal; "" for the target host:port
	}{
		{"127.0.0.1", allowed, "is a loopback address"},
		{"::1", allowed, "is a loopback address"},
		{"0.0.0.0", allowed, "is the unspecified address"},
		{"::", allowed, "is the unspecified address"},
		{"2130706433", allowed, "127.0.0.1 in another notation, a loopback address"},
		{"0177.0.0.1", allowed, "127.0.0.1 in another notation, a loopback address"},
		{"0x7f.1", allowed, "127.0.0.1 in another notation, a loopback address"},
		{"::ffff:127.0.0.1", allowed, "is a loopback address"},
		{"169.254.169.254", allowed, "is a cloud metadata address"},
		{"fd00:ec2::254", allowed, "is a cloud metadata address"},
		{"fe80::1", allowed, "is a link-local address"},
		{"169.254.3.4", allowed, "is a link-local address"},
		{"metadata.google.internal", allowed, "is a cloud metadata service"},
		{"169.254.169.254", nil, "is a cloud metadata address"}, // said before "not allowed"
		{"db.example", nil, "is not the container's own address"},
		{"db.example", allowed, "db.example:80"},
		{"192.0.2.10", allowed, "192.0.2.10:80"},
	} {
		got, err := Target(c, labels.Check{Type: "http", Host: tc.host, Port: 80}, "", nil, tc.allowed)
		var re *RefusedError
		switch {
		case strings.HasSuffix(tc.want, ":80"):
			if got != tc.want || err != nil {
				t.Errorf("%s: %q, %v; want %q", tc.host, got, err, tc.want)
			}
		case !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s (allowed %v): %q, %v; want a refusal saying %q", tc.host, tc.allowed[tc.host], got, err, tc.want)
		}
	}

	// A host-network container's own address is loopback, and that is no refusal.
	hn := testContainer("h", true, nil)
	hn.NetworkMode, hn.Networks = "host", nil
	if got, err := Target(hn, labels.Check{Type: "tcp", Port: 9000}, "", nil, nil); got != "127.0.0.1:9000" || err != nil {
		t.Errorf("host-network container: %q, %v", got, err)
	}
}

// A check naming a network goes over it only when the agent, in a container with
// networks of its own, is on it too (or it is LOOKOUT_PROBE_NETWORK); an agent on the
// host network reaches every network of the node.
func TestTargetNetworkTheAgentDoesNotShare(t *testing.T) {
	c := testContainer("n", true, nil)
	c.Networks = map[string]string{"front": "10.1.0.5", "back": "10.2.0.5"}
	for _, tc := range []struct {
		network, probeNetwork string
		agent                 []string
		want                  string // target, or the refusal's words
	}{
		{"back", "", []string{"front"}, `network "back" is not one the agent's container is on (front)`},
		{"front", "", []string{"front"}, "10.1.0.5:80"},
		{"back", "back", []string{"front"}, "10.2.0.5:80"},
		{"back", "", nil, "10.2.0.5:80"},
		{"", "", []string{"front"}, "10.1.0.5:80"},
		{"other", "", []string{"front"}, `the container has no address on network "other"`},
	} {
		got, err := Target(c, labels.Check{Type: "http", Port: 80, Network: tc.network}, tc.probeNetwork, tc.agent, nil)
		if got != tc.want && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("network %q, probe network %q, agent on %v: %q, %v; want %q", tc.network, tc.probeNetwork, tc.agent, got, err, tc.want)
		}
	}
}
