package testpeer

import (
	"io"
	"net"
	"sync"
)

// Forwarder accepts TCP connections on Addr and joins each to a new connection to a
// target (network "tcp" or "unix"): a peer listening on loopback made reachable from
// elsewhere (the nodes of the cluster tests reach the host's peers on their network's
// gateway), or a connection the test can cut (Cut) and open again (Restore).
type Forwarder struct {
	Addr          string
	network, dest string

	mu      sync.Mutex
	l       net.Listener
	conns   map[net.Conn]bool
	blocked map[string]bool // client IPs refused (Block)
}

// Forward listens on addr and forwards every connection to dest on network.
func Forward(addr, network, dest string) (*Forwarder, error) {
	f := &Forwarder{Addr: addr, network: network, dest: dest, conns: map[net.Conn]bool{}, blocked: map[string]bool{}}
	return f, f.Restore()
}

// Restore listens again after Cut (on the same address).
func (f *Forwarder) Restore() error {
	l, err := net.Listen("tcp", f.Addr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if f.isBlocked(c) {
				c.Close()
				continue
			}
			u, err := net.Dial(f.network, f.dest)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			if f.blocked[clientIP(c)] { // blocked while this one was being dialled
				f.mu.Unlock()
				c.Close()
				u.Close()
				continue
			}
			f.conns[c], f.conns[u] = true, false
			f.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close(); f.forget(c, u) }()
			go func() { _, _ = io.Copy(c, u); c.Close(); f.forget(c, u) }()
		}
	}()
	return nil
}

// Cut closes the listener and every connection: the other side sees the peer disappear.
func (f *Forwarder) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.l != nil {
		f.l.Close()
		f.l = nil
	}
	for c := range f.conns {
		c.Close()
	}
	f.conns = map[net.Conn]bool{} // true: a client's, false: to the target
}

func (f *Forwarder) forget(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.conns, c)
	}
}

func clientIP(c net.Conn) string {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	return host
}

func (f *Forwarder) isBlocked(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[clientIP(c)]
}

// Block cuts the connections from ip and refuses its new ones until Unblock: one client
// (a node of the cluster tests) loses the peer while the others keep it.
func (f *Forwarder) Block(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[ip] = true
	for c, client := range f.conns {
		if client && clientIP(c) == ip {
			c.Close()
		}
	}
}

// Unblock takes ip's connections again.
func (f *Forwarder) Unblock(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.blocked, ip)
}
