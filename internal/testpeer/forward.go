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

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
}

// Forward listens on addr and forwards every connection to dest on network.
func Forward(addr, network, dest string) (*Forwarder, error) {
	f := &Forwarder{Addr: addr, network: network, dest: dest, conns: map[net.Conn]bool{}}
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
			u, err := net.Dial(f.network, f.dest)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns[c], f.conns[u] = true, true
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
	f.conns = map[net.Conn]bool{}
}

func (f *Forwarder) forget(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		delete(f.conns, c)
	}
}
