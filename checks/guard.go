package checks

// Where a check may not go. A check probes the container's own address; a host written
// in a label (allowed by LOOKOUT_PROBE_ALLOWED_HOSTS) may reach other machines, but never
// the node itself, loopback, link-local or cloud metadata addresses, whatever the
// allowlist says and however the host is written: the host is resolved once, every
// address it resolves to is judged, and the connection goes to a judged address, with
// the socket's final address judged again (a net.Dialer Control function) just before
// it connects. A container's own address, chosen from Docker's inspection rather than
// from a label, is dialled as it is: a host-network container's is 127.0.0.1.

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// RefusedError says why a check is not let go where it asks: Target's and the dialler's
// refusals, and a redirect to another host.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refusal(format string, a ...any) error { return &RefusedError{Reason: fmt.Sprintf(format, a...)} }

// neverReached is appended to the reason of a refused address.
const neverReached = "checks never reach the node itself, loopback, link-local or cloud metadata addresses, allowed host or not"

// metadataAddrs are cloud instance metadata services: AWS, GCP, Azure, OpenStack and
// DigitalOcean (169.254.169.254), AWS over IPv6 (fd00:ec2::254), AWS ECS task metadata
// (169.254.170.2) and Alibaba Cloud (100.100.100.200).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("100.100.100.200"),
}

// metadataNames are the names of metadata services, refused before any lookup (their
// addresses are refused too, whatever name leads to them).
var metadataNames = []string{"metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"}

// nat64 is the well-known NAT64 prefix: its addresses carry an IPv4 address in their last
// four bytes.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// forbidden says what kind of address a label-written host may not reach ip is ("a
// loopback address"), or "" when it may. node lists the node's own addresses.
func forbidden(ip netip.Addr, node []netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		if why := forbidden(netip.AddrFrom4([4]byte(b[12:])), node); why != "" {
			return why + " (inside a NAT64 address)"
		}
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "a cloud metadata address"
		}
	}
	switch {
	case ip.IsUnspecified():
		return "the unspecified address (it reaches the node itself)"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "a multicast or broadcast address"
	}
	for _, n := range node {
		if ip == n.WithZone("").Unmap() {
			return "an address of the node itself"
		}
	}
	return ""
}

// vetHost judges a host as a label writes it, before any lookup: a literal address that
// may not be reached, a metadata service's name, or an IPv4 address in one of the
// notations some resolvers take (2130706433, 0177.0.0.1, 0x7f.1, 127.1) and others look
// up as a name. It returns the address when host is an IP address.
func vetHost(host string, node []netip.Addr) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if why := forbidden(ip, node); why != "" {
			return netip.Addr{}, refusal("host %q is %s: %s", host, why, neverReached)
		}
		return ip, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, m := range metadataNames {
		if name == m {
			return netip.Addr{}, refusal("host %q is a cloud metadata service: %s", host, neverReached)
		}
	}
	if ip, numeric := legacyIPv4(name); numeric {
		if !ip.IsValid() {
			return netip.Addr{}, refusal("host %q is numbers, not a host name, and no IPv4 address either", host)
		}
		also := ""
		if why := forbidden(ip, node); why != "" {
			also = ", " + why
		}
		return netip.Addr{}, refusal("host %q is the IPv4 address %s in another notation%s: write an IPv4 address as four decimal numbers", host, ip, also)
	}
	return netip.Addr{}, nil
}

// VetAllowedHosts refuses the entries of an allowlist (probe_allowed_hosts) that no
// check could ever reach: the node's own, loopback, link-local, unspecified and metadata
// addresses, metadata services' names, and IPv4 addresses in other notations. A name
// stays: what it resolves to is judged at each run. One error per entry, naming it.
func VetAllowedHosts(hosts []string) error {
	var errs []error
	node := labelHosts.node()
	for _, h := range hosts {
		if _, err := vetHost(h, node); err != nil {
			errs = append(errs, fmt.Errorf("probe_allowed_hosts: %q can never be probed: %w; remove it", h, err))
		}
	}
	return errors.Join(errs...)
}

// legacyIPv4 reads s as inet_aton(3) does: one to four parts separated by dots, each
// decimal, octal (a leading 0) or hex (0x), the last part filling the bytes that remain.
// numeric says s is written that way at all; the address is invalid when a part is too
// large.
func legacyIPv4(s string) (ip netip.Addr, numeric bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		// More than four numeric parts is no address, and no host name either.
		for _, p := range parts {
			if _, ok := legacyPart(p); !ok {
				return netip.Addr{}, false
			}
		}
		return netip.Addr{}, true
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := legacyPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var b [4]byte
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, true
		}
		b[i] = byte(v)
	}
	last, room := vals[len(vals)-1], 5-len(vals) // bytes the last part fills
	if last >= 1<<(8*room) {
		return netip.Addr{}, true
	}
	for i := 3; i >= len(vals)-1; i-- {
		b[i] = byte(last)
		last >>= 8
	}
	return netip.AddrFrom4(b), true
}

// legacyPart reads one part of an inet_aton address; a value above 2^32 is capped there.
func legacyPart(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" alone is 0 to inet_aton
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	v, err := strconv.ParseUint(p, base, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 1 << 32, true
	}
	if err != nil {
		return 0, false
	}
	return min(v, 1<<32), true
}

// guard dials the hosts labels name: resolved once, each address judged, the socket's
// address judged again just before connecting.
type guard struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	node   func() []netip.Addr // the node's own addresses
}

// labelHosts is the guard of the checks' dials to hosts written in labels.
var labelHosts = &guard{
	lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	},
	node: nodeAddrs,
}

// resolve returns the addresses of host, every one judged; a host with any address that
// may not be reached is refused as a whole (a name answering 127.0.0.1 among others).
func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	node := g.node()
	if ip, err := vetHost(host, node); err != nil || ip.IsValid() {
		return []netip.Addr{ip}, err
	}
	ips, err := g.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no address", Name: host, IsNotFound: true}
	}
	for _, ip := range ips {
		if why := forbidden(ip, node); why != "" {
			return nil, refusal("host %q resolves to %s, %s: %s", host, ip.WithZone("").Unmap(), why, neverReached)
		}
	}
	return ips, nil
}

// DialContext connects to addr ("host:port") over one of the addresses resolve judged,
// in order, as net.Dialer does; the DNS answer is not asked again, so a name cannot turn
// into another address between the judgement and the connection (DNS rebinding).
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	d := net.Dialer{Control: g.control}
	var first error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// control judges the address a socket is about to connect to, the last word whatever
// came before.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refusal("cannot judge address %q: %v", address, err)
	}
	if why := forbidden(ap.Addr(), g.node()); why != "" {
		return refusal("address %s is %s: %s", ap.Addr().WithZone("").Unmap(), why, neverReached)
	}
	return nil
}

// nodeAddrs returns the node's own addresses as the agent sees them: those of its network
// namespace's interfaces (all of the node's when the agent runs on the host network, as
// the stack does) and its default gateways (from a container: the node's address on the
// container's bridge).
func nodeAddrs() []netip.Addr {
	var out []netip.Addr
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr())
			}
		}
	}
	return append(out, defaultGateways("/proc/net/route")...)
}

// defaultGateways reads the IPv4 default routes' gateways from a /proc/net/route file.
func defaultGateways(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags …, addresses in hex, little-endian.
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || fs[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fs[2])
		if err != nil || len(b) != 4 || fs[2] == "00000000" {
			continue
		}
		out = append(out, netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}))
	}
	return out
}
