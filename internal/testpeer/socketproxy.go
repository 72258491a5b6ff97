package testpeer

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// SocketProxy is HAProxy (the Debian package) running deploy/socket-proxy/haproxy.cfg in
// front of a Docker Engine's socket, listening on 127.0.0.1:Port; its request log is Log.
type SocketProxy struct {
	Port int
	Host string // tcp://127.0.0.1:Port, for LOOKOUT_DOCKER_HOST
	Log  string
	proc *process
}

// StartSocketProxy runs haproxy -db -f cfg with the engine's socket, exec let through or
// not (the configuration's EXEC switch), on a free loopback port (or port, when not 0:
// a proxy restarted where the agent expects it).
func StartSocketProxy(cfg, dir, socket string, allowExec bool, port int) (*SocketProxy, error) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, fmt.Errorf("haproxy not found: run `make peers` (installs the Debian package haproxy)")
	}
	if port == 0 {
		port = FreePort()
	}
	p := &SocketProxy{Port: port, Host: fmt.Sprintf("tcp://127.0.0.1:%d", port), Log: filepath.Join(dir, "haproxy.log")}
	execOn := "0"
	if allowExec {
		execOn = "1"
	}
	env := []string{fmt.Sprintf("LISTEN=127.0.0.1:%d", port), "DOCKER_SOCKET=" + socket, "EXEC=" + execOn}
	ping := &http.Client{Timeout: 2 * time.Second}
	ready := func() bool {
		resp, err := ping.Get(fmt.Sprintf("http://127.0.0.1:%d/_ping", port))
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
