package testpeer

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Peers that tests stop and start again (Jaeger, the Fluentd receiver, InfluxDB) must
// get their ports back. A port the kernel hands out for ":0" comes from the ephemeral
// range, the same range every outgoing connection on the machine takes its local port
// from: while a peer is down, a client's connection (the agent's own retries among them)
// can take its port, and the restart fails with "address already in use". So the ports
// given here are below that range, checked free, and never handed out twice by one
// test process.

var ports struct {
	sync.Mutex
	given map[int]bool
}

// portRange returns the ports to pick from: 20000 up to the start of the kernel's
// ephemeral range (32768 when it cannot be read).
func portRange() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// freePort returns a port on 127.0.0.1 outside the ephemeral range that bind (which
// binds and closes it) accepts.
func freePort(bind func(port int) error) int {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	lo, hi := portRange()
	var err error
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		if ports.given[p] {
			continue
		}
		if err = bind(p); err == nil {
			ports.given[p] = true
			return p
		}
	}
	panic(fmt.Sprintf("no free port in %d-%d: %v", lo, hi-1, err))
}

// FreePort returns a TCP port free on 127.0.0.1 now, outside the ephemeral range.
func FreePort() int {
	return freePort(func(p int) error {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
		}
		return err
	})
}

// FreeUDPPort returns a UDP port free on 127.0.0.1 now, outside the ephemeral range.
func FreeUDPPort() int {
	return freePort(func(p int) error {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err == nil {
			c.Close()
		}
		return err
	})
}
