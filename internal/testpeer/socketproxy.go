package testpeer

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SocketProxy is HAProxy (the Debian package) running deploy/socket-proxy/haproxy.cfg in
// front of a Docker Engine's socket, listening on 127.0.0.1:Port or on a unix socket;
// its request log is Log.
type SocketProxy struct {
	Port int    // the loopback port, 0 on a unix socket
	Host string // tcp://127.0.0.1:Port or unix:///path, for LOOKOUT_DOCKER_HOST
	Log  string
	proc *process
}

// StartSocketProxy runs haproxy -db -f cfg with the engine's socket, exec let through or
// not (the configuration's EXEC switch), listening where listen says: "" a free loopback
// port, host:port (a proxy restarted where the agent expects it), or an absolute path
// for a unix socket.
func StartSocketProxy(cfg, dir, socket string, allowExec bool, listen string) (*SocketProxy, error) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, fmt.Errorf("haproxy not found: run `make peers` (installs the Debian package haproxy)")
	}
	p := &SocketProxy{Log: filepath.Join(dir, "haproxy.log")}
	ping := &http.Client{Timeout: 2 * time.Second}
	base := "http://docker"
	switch {
	case listen == "":
		p.Port = FreePort()
		listen = fmt.Sprintf("127.0.0.1:%d", p.Port)
	case filepath.IsAbs(listen):
		path := listen
		ping.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}
		p.Host = "unix://" + path
	default:
		_, port, err := net.SplitHostPort(listen)
		if err == nil {
			p.Port, err = strconv.Atoi(port)
		}
		if err != nil {
			return nil, fmt.Errorf("socket proxy: listen %q: want host:port or an absolute socket path", listen)
		}
	}
	if p.Port != 0 {
		p.Host = fmt.Sprintf("tcp://127.0.0.1:%d", p.Port)
		base = fmt.Sprintf("http://127.0.0.1:%d", p.Port)
	}
	execOn := "0"
	if allowExec {
		execOn = "1"
	}
	env := []string{"LISTEN=" + listen, "DOCKER_SOCKET=" + socket, "EXEC=" + execOn}
	ready := func() bool {
		resp, err := ping.Get(base + "/_ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	var err error
	p.proc, err = startProcess("haproxy", p.Log, env, ready, 20*time.Second, "haproxy", "-db", "-f", cfg)
	return p, err
}

// Stop stops HAProxy and waits for it.
func (p *SocketProxy) Stop() {
	p.proc.stop(5 * time.Second)
	p.proc = nil
}

// ProxyRequest is one request line of HAProxy's log and the status it got.
type ProxyRequest struct {
	Status int
	Method string
	Path   string
}

// httplog: `... frontend backend/server Tq/Tw/Tc/Tr/Ta STATUS BYTES ... "METHOD PATH HTTP/1.1"`.
var httpLogLine = regexp.MustCompile(`\s(\d{3}) \d+ .*"([A-Z]+) (\S+) HTTP/[0-9.]+"$`)

// Requests returns every request HAProxy has logged so far (a request is logged when it
// ends: a stream still open is not there yet).
func (p *SocketProxy) Requests() ([]ProxyRequest, error) {
	f, err := os.Open(p.Log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ProxyRequest
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := httpLogLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		var st int
		fmt.Sscan(m[1], &st)
		out = append(out, ProxyRequest{Status: st, Method: m[2], Path: m[3]})
	}
	return out, sc.Err()
}
