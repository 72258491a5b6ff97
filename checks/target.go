package checks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
)

// Target says where a check of a container goes. Only the container's own addresses are
// targets: the address on the network the check names, else on the agent's probe
// network, else on a network the agent's own container shares with it (agentNets), else,
// for a Swarm task while the agent is in the host's network namespace (no networks of
// its own), its docker_gwbridge address (its overlay addresses are not reachable from
// the host), else on the container's first network; loopback for host-network containers.
// A host written in the label is refused unless the agent's configuration allows it, so
// that a label cannot turn the agent into a tool for reaching other machines; allowed or
// not, it never reaches the node itself, loopback, link-local or metadata addresses (see
// guard.go). A network the check names must be one the agent's own container is on, when
// the agent runs in one with networks of its own (or LOOKOUT_PROBE_NETWORK). Refusals
// are *RefusedError.
func Target(c *inventory.Container, chk labels.Check, probeNetwork string, agentNets []string, allowedHosts map[string]bool) (string, error) {
	if chk.Type == labels.CheckExec {
		return "", nil
	}
	host, err := targetHost(c, chk, probeNetwork, agentNets, allowedHosts)
	if err != nil {
		return "", err
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, chk.Port), nil
}

func targetHost(c *inventory.Container, chk labels.Check, probeNetwork string, agentNets []string, allowedHosts map[string]bool) (string, error) {
	if chk.Host != "" {
		// Judged before the allowlist, so that the reason says what the host is; the
		// dial judges again what the host resolves to (guard).
		if _, err := vetHost(chk.Host, labelHosts.node()); err != nil {
			return "", err
		}
		if allowedHosts[chk.Host] {
			return chk.Host, nil
		}
		return "", refusal("host %q is not the container's own address: the agent probes only containers' own addresses unless its configuration allows the host (LOOKOUT_PROBE_ALLOWED_HOSTS)", chk.Host)
	}
	if c.NetworkMode == "host" {
		return "127.0.0.1", nil
	}
	nets := c.SortedNetworks()
	if chk.Network != "" {
		ip := c.Networks[chk.Network]
		if ip == "" {
			return "", fmt.Errorf("the container has no address on network %q (it is on: %s)", chk.Network, orNone(nets))
		}
		// An agent in a container of its own reaches only the networks it is on (and
		// the one its configuration names): a label does not send it into another.
		if len(agentNets) > 0 && chk.Network != probeNetwork && !slices.Contains(agentNets, chk.Network) {
			return "", refusal("network %q is not one the agent's container is on (%s): the agent probes a container over a network it shares, or LOOKOUT_PROBE_NETWORK", chk.Network, strings.Join(agentNets, ", "))
		}
		return ip, nil
	}
	if ip := c.Networks[probeNetwork]; probeNetwork != "" && ip != "" {
		return ip, nil
	}
	for _, n := range agentNets {
		if ip := c.Networks[n]; ip != "" && n != "ingress" {
			return ip, nil
		}
	}
	if len(agentNets) == 0 && c.BridgeIP != "" {
		return c.BridgeIP, nil
	}
	for _, n := range nets {
		if n != "ingress" {
			return c.Networks[n], nil
		}
	}
	return "", fmt.Errorf("the container has no IP address to probe (network mode %q)", c.NetworkMode)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no network"
	}
	return strings.Join(s, ", ")
}
