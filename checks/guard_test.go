package checks

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Every form of an address a label-written host may not reach is refused before any
// lookup, with a reason that says what the host is.
func TestVetHost(t *testing.T) {
	node := []netip.Addr{netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("2001:db8::7")}
	for _, tc := range []struct {
		host string
		want string // in the refusal; "" for accepted
	}{
		{"127.0.0.1", "is a loopback address"},
		{"127.8.9.10", "is a loopback address"},
		{"::1", "is a loopback address"},
		{"[::1]", "is a loopback address"},
		{"0:0:0:0:0:0:0:1", "is a loopback address"},
		{"0.0.0.0", "is the unspecified address"},
		{"::", "is the unspecified address"},
		{"2130706433", "is the IPv4 address 127.0.0.1 in another notation, a loopback address"},
		{"0177.0.0.1", "is the IPv4 address 127.0.0.1 in another notation, a loopback address"},
		{"0x7f.1", "is the IPv4 address 127.0.0.1 in another notation, a loopback address"},
		{"0x7F000001", "127.0.0.1 in another notation"},
		{"0x7f.0.0.1", "127.0.0.1 in another notation"},
		{"127.1", "127.0.0.1 in another notation"},
		{"127.0.1", "127.0.0.1 in another notation"},
		{"017700000001", "127.0.0.1 in another notation"},
		{"0", "0.0.0.0 in another notation, the unspecified address"},
		{"2852039166", "169.254.169.254 in another notation, a cloud metadata address"},
		{"167772165", "is the IPv4 address 10.0.0.5 in another notation: write an IPv4 address as four decimal numbers"},
		{"4294967296", "is numbers, not a host name"},
		{"256.0.0.1", "is numbers, not a host name"},
		{"1.2.3.4.5", "is numbers, not a host name"},
		{"::ffff:127.0.0.1", "is a loopback address"},
		{"::ffff:7f00:1", "is a loopback address"},
		{"::ffff:169.254.169.254", "is a cloud metadata address"},
		{"64:ff9b::7f00:1", "is a loopback address (inside a NAT64 address)"},
		{"169.254.169.254", "is a cloud metadata address"},
		{"fd00:ec2::254", "is a cloud metadata address"},
		{"169.254.170.2", "is a cloud metadata address"},
		{"100.100.100.200", "is a cloud metadata address"},
		{"metadata.google.internal", "is a cloud metadata service"},
		{"Metadata.Google.Internal.", "is a cloud metadata service"},
		{"metadata.goog", "is a cloud metadata service"},
		{"169.254.1.1", "is a link-local address"},
		{"fe80::1", "is a link-local address"},
		{"fe80::1%eth0", "is a link-local address"},
		{"ff02::1", "is a link-local address"},
		{"239.1.2.3", "is a multicast or broadcast address"},
		{"255.255.255.255", "is a multicast or broadcast address"},
		{"10.9.8.7", "is an address of the node itself"},
		{"::ffff:10.9.8.7", "is an address of the node itself"},
		{"2001:db8::7", "is an address of the node itself"},
		// Accepted here (an allowlist still has to name them; a name's addresses are
		// judged when it is dialled).
		{"10.0.0.5", ""},
		{"192.0.2.10", ""},
		{"2001:db8::1", ""},
		{"db.internal", ""},
		{"example.com.", ""},
		{"0x7f.example", ""},
		{"08.1.2.3", ""}, // not octal: a name to resolvers too
		{"cafe", ""},
	} {
		_, err := vetHost(tc.host, node)
		var re *RefusedError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.host, err)
		case tc.want != "" && (!errors.As(err, &re) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v; want a refusal saying %q", tc.host, err, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), "\""+tc.host+"\""):
			t.Errorf("%q: the reason does not name the host: %v", tc.host, err)
		}
	}
}

// localIP returns an address of this machine that is neither loopback nor link-local
// (docker0's on the project's machine), for a listener the guard may reach when it is
// told the node has no addresses.
func localIP(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && forbidden(p.Addr(), nil) == "" {
			return p.Addr()
		}
	}
	t.Fatal("no IPv4 address on this machine other than loopback and link-local")
	return netip.Addr{}
}

// scriptedGuard answers the lookups of any name with the answers given, one a lookup (the
// last one again when they run out), and counts the lookups.
func scriptedGuard(lookups *atomic.Int64, answers ...[]netip.Addr) *guard {
	return &guard{
		lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			n := int(lookups.Add(1))
			return answers[min(n, len(answers))-1], nil
		},
		node: func() []netip.Addr { return nil },
	}
}

// useGuard makes g the guard of label-written hosts for the test.
func useGuard(t *testing.T, g *guard) {
	old := labelHosts
	labelHosts = g
	t.Cleanup(func() { labelHosts = old })
}

// A name is resolved once for a connection and the connection goes to the address that
// was judged: a name whose next answer is loopback (DNS rebinding) gets no further than
// the judgement of that answer.
func TestGuardResolvesOnceAndDialsTheJudgedAddress(t *testing.T) {
	ip := localIP(t)
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.Host)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	port := l.Addr().(*net.TCPAddr).Port

	var lookups atomic.Int64
	useGuard(t, scriptedGuard(&lookups, []netip.Addr{ip}, []netip.Addr{netip.MustParseAddr("127.0.0.1")}))
	c := httpCheck()
	c.Host, c.Port = "rebind.example", port
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
	r := ProbeHTTP(context.Background(), c, addr)
	wantResult(t, r, Success)
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one connection, want 1", n)
	}
	r = ProbeHTTP(context.Background(), c, addr)
	wantResult(t, r, Error)
	if want := `refused: host "rebind.example" resolves to 127.0.0.1, a loopback address`; !strings.HasPrefix(r.Reason, want) || !r.Refused {
		t.Errorf("second answer loopback: reason %q (refused %v), want %q…", r.Reason, r.Refused, want)
	}

	// One forbidden address among good ones refuses the name.
	useGuard(t, scriptedGuard(&lookups, []netip.Addr{ip, netip.MustParseAddr("169.254.169.254")}))
	r = ProbeHTTP(context.Background(), c, addr)
	if !r.Refused || !strings.Contains(r.Reason, "resolves to 169.254.169.254, a cloud metadata address") {
		t.Errorf("a metadata address among the answers: %+v", r)
	}

	// TCP checks go through the same guard.
	tc := tcpCheck()
	tc.Host, tc.Port = "rebind.example", port
	useGuard(t, scriptedGuard(&lookups, []netip.Addr{ip}))
	wantResult(t, ProbeTCP(context.Background(), tc, addr), Success)
	useGuard(t, scriptedGuard(&lookups, []netip.Addr{netip.MustParseAddr("::1")}))
	r = ProbeTCP(context.Background(), tc, addr)
	if !r.Refused || r.Result != Error || !strings.Contains(r.Reason, `refused: host "rebind.example" resolves to ::1, a loopback address`) {
		t.Errorf("tcp to a name answering ::1: %+v", r)
	}
}

// The real guard: localhost resolves to loopback, and the node's own addresses are
// refused; a literal address is judged without a lookup.
func TestGuardRefusesTheNode(t *testing.T) {
	c := httpCheck()
	for _, host := range []string{"localhost", localIP(t).String(), "0x7f.1", "::ffff:127.0.0.1"} {
		c.Host, c.Port = host, 8080
		r := ProbeHTTP(context.Background(), c, net.JoinHostPort(host, "8080"))
		if r.Result != Error || !r.Refused || !strings.HasPrefix(r.Reason, "refused: host \""+host+"\"") ||
			!(strings.Contains(r.Reason, "a loopback address") || strings.Contains(r.Reason, "an address of the node itself")) {
			t.Errorf("%s: %+v", host, r)
		}
	}
}

// The socket's own address is judged last, whatever came before it.
func TestGuardControl(t *testing.T) {
	g := &guard{node: func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("10.9.8.7")} }}
	for addr, want := range map[string]string{
		"127.0.0.1:80":          "address 127.0.0.1 is a loopback address",
		"[::ffff:127.0.0.1]:80": "address 127.0.0.1 is a loopback address",
		"[::1]:80":              "address ::1 is a loopback address",
		"0.0.0.0:80":            "the unspecified address",
		"169.254.169.254:80":    "a cloud metadata address",
		"[fe80::1%eth0]:80":     "a link-local address",
		"10.9.8.7:80":           "an address of the node itself",
		"10.0.0.5:80":           "",
		"[2001:db8::1]:443":     "",
	} {
		err := g.control("tcp", addr, nil)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v; want %q", addr, err, want)
		}
	}
}

// A check without a host dials the container's own address as Docker gave it, loopback
// for a host-network container included.
func TestOwnAddressIsNotGuarded(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	wantResult(t, ProbeHTTP(context.Background(), httpCheck(), hostPort(srv)), Success)
}

func TestDefaultGateways(t *testing.T) {
	path := t.TempDir() + "/route"
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
	if err := os.WriteFile(path, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	got := defaultGateways(path)
	if len(got) != 1 || got[0] != netip.MustParseAddr("172.17.0.1") {
		t.Errorf("gateways %v, want [172.17.0.1]", got)
	}
	if defaultGateways(path+".missing") != nil {
		t.Error("a missing route file gives gateways")
	}
}

// An allowlist entry no check could ever reach is refused when the agent starts, naming
// it and why; a name, and an address a check may reach, stay.
func TestVetAllowedHosts(t *testing.T) {
	if err := VetAllowedHosts([]string{"db.internal", "10.1.2.3", "localhost", "2001:db8::1"}); err != nil {
		t.Errorf("allowed hosts a check may reach refused: %v", err)
	}
	err := VetAllowedHosts([]string{"db.internal", "127.0.0.1", "2130706433", "169.254.169.254", "metadata.google.internal", "::1", "0.0.0.0"})
	if err == nil {
		t.Fatal("no error for entries no check could ever reach")
	}
	msg := err.Error()
	for _, want := range []string{
		`probe_allowed_hosts: "127.0.0.1" can never be probed: host "127.0.0.1" is a loopback address`,
		`"2130706433" can never be probed: host "2130706433" is the IPv4 address 127.0.0.1 in another notation`,
		`"169.254.169.254" can never be probed: host "169.254.169.254" is a cloud metadata address`,
		`"metadata.google.internal" can never be probed`,
		`"::1" can never be probed`,
		`"0.0.0.0" can never be probed: host "0.0.0.0" is the unspecified address`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "db.internal\"") || strings.Count(msg, "\n") != 5 {
		t.Errorf("want one line for each of the 6 entries refused, none for db.internal:\n%s", msg)
	}
}
