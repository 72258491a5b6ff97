package otlp

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxConns is the connections a receiver serves at once. Each may hold up to 68 KiB of
// request headers while they come (64 KiB and Go's 4 KiB), so many connections sending
// headers slowly could otherwise hold memory without bound (1,000 held 66 MiB).
const MaxConns = 64

// connLimit is a listener that serves at most max connections at once. When all are
// taken, it closes the connection idle the longest (an SDK's keep-alive connection between
// exports: it dials again) to take the next one; with none idle, the next waits in the
// kernel's backlog until one ends (ReadHeaderTimeout and ReadTimeout end the slow ones).
type connLimit struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	idled chan struct{} // a connection went idle (wakes a waiting Accept)
	once  sync.Once

	mu   sync.Mutex
	idle map[net.Conn]time.Time // since when, by the connection Accept returned
}

func newConnLimit(l net.Listener, max int) *connLimit {
	return &connLimit{Listener: l, slots: make(chan struct{}, max), done: make(chan struct{}), idled: make(chan struct{}, 1),
		idle: map[net.Conn]time.Time{}}
}

// Accept waits for a free slot (closing the oldest idle connection when none is free),
// then for a connection.
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		default:
			if !l.closeIdle() {
				select {
				case l.slots <- struct{}{}:
				case <-l.done:
					return nil, net.ErrClosed
				case <-l.idled:
					continue
				}
			} else {
				continue // its slot comes free when its Close returns
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
	}
}

// closeIdle closes the connection idle the longest; false when none is idle.
func (l *connLimit) closeIdle() bool {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	_ = oldest.Close()
	return true
}

// connState is the server's ConnState hook: it keeps track of the idle connections.
func (l *connLimit) connState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
		select {
		case l.idled <- struct{}{}:
		default:
		}
	} else {
		delete(l.idle, c)
	}
}

// Close closes the listener and ends a waiting Accept.
func (l *connLimit) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
