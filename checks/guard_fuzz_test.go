package checks

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// FuzzVetHost: the host of a check label is written by whoever starts the container.
// vetHost never panics and keeps its promise whatever the host: an address it lets
// through is one forbidden() allows and is exactly the literal written; a refusal is a
// RefusedError on one line; a host it passes to the resolver is no IP literal, no
// inet_aton number and no metadata name. legacyIPv4 reads an address the way inet_aton
// does: its result survives being written back in decimal, octal and hex parts, and it
// agrees with netip on every dotted quad netip reads.
func FuzzVetHost(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7F000001", "017700000001",
		"[::1]", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "fe80::1%eth0", "0.0.0.0", "0",
		"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal.",
		"10.0.0.5", "224.0.0.1", "255.255.255.255", "1.2.3.4.5", "0x", "4294967296",
		"99999999999999999999999", "08.1.1.1", "example.com", "db", "a_b.c-d", "", ".",
		"1.2.3.4", "01.02.03.04", "[1.2.3.4]", "1e1", "0x1.0x2.0x3.0x4",
	} {
		f.Add(s)
	}
	node := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("2001:db8::5")}
	f.Fuzz(func(t *testing.T, host string) {
		ip, err := vetHost(host, node)
		literal, litErr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		_, numeric := legacyIPv4(strings.ToLower(strings.TrimSuffix(host, ".")))
		switch {
		case err != nil:
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason == "" || strings.ContainsAny(re.Reason, "\r\n") && !strings.ContainsAny(host, "\r\n") {
				t.Fatalf("vetHost(%q): %v (%T), want a RefusedError on one line", host, err, err)
			}
			if ip.IsValid() {
				t.Fatalf("vetHost(%q) refused and returned %v", host, ip)
			}
		case ip.IsValid():
			if litErr != nil || ip != literal {
				t.Fatalf("vetHost(%q) = %v, want the literal written (%v, %v)", host, ip, literal, litErr)
			}
			if why := forbidden(ip, node); why != "" {
				t.Fatalf("vetHost(%q) let %v through, which is %s", host, ip, why)
			}
		default: // a name, for the resolver
			if litErr == nil {
				t.Fatalf("vetHost(%q): an IP literal (%v) passed as a name", host, literal)
			}
			if numeric {
				t.Fatalf("vetHost(%q): an inet_aton number passed as a name", host)
			}
			for _, m := range metadataNames {
				if strings.EqualFold(strings.TrimSuffix(host, "."), m) {
					t.Fatalf("vetHost(%q): a metadata service's name passed", host)
				}
			}
		}

		v4, numeric := legacyIPv4(host)
		if !numeric || !v4.IsValid() {
			if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
				t.Fatalf("legacyIPv4(%q) = %v, %v; netip reads %v", host, v4, numeric, a)
			}
			return
		}
		if a, err := netip.ParseAddr(host); err == nil && a != v4 {
			t.Fatalf("legacyIPv4(%q) = %v, netip reads %v", host, v4, a)
		}
		b := v4.As4()
		for _, form := range []string{"%d.%d.%d.%d", "0%o.0%o.0%o.0%o", "0x%x.0x%x.0x%x.0x%x"} {
			s := fmt.Sprintf(form, b[0], b[1], b[2], b[3])
			if back, ok := legacyIPv4(s); !ok || back != v4 {
				t.Fatalf("legacyIPv4(%q) = %v from %q, and %v, %v written back as %q", host, v4, host, back, ok, s)
			}
		}
		whole := fmt.Sprint(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
		if back, ok := legacyIPv4(whole); !ok || back != v4 {
			t.Fatalf("legacyIPv4(%q) = %v, and %v, %v for the whole number %s", host, v4, back, ok, whole)
		}
	})
}
