package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func hostPort(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func httpCheck() labels.Check {
	return labels.Check{Name: "web", Type: labels.CheckHTTP, Scheme: "http", Path: "/health", Timeout: 10 * time.Second}
}

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentListener accepts connections and never writes to them until the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func wantResult(t *testing.T, r Result, result string) {
	t.Helper()
	if r.Result != result {
		t.Fatalf("result %q (reason %q, status %d, output %q), want %q", r.Result, r.Reason, r.StatusCode, r.Output, result)
	}
}

func TestProbeHTTPSuccess(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.URL.RawQuery != "full=1" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	})
	c := httpCheck()
	c.Path = "/health?full=1"
	before := time.Now()
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	if r.Check != "web" || r.Type != "http" || r.Target != hostPort(srv) || r.StatusCode != 200 {
		t.Errorf("result %+v", r)
	}
	if r.Reason != "" || r.Output != "" {
		t.Errorf("a success has reason %q and output %q", r.Reason, r.Output)
	}
	if r.Start.Before(before) || r.Duration <= 0 || r.Duration > time.Since(before) {
		t.Errorf("start %v, duration %v", r.Start, r.Duration)
	}
	if r.Phases.Connect <= 0 || r.Phases.FirstByte <= 0 {
		t.Errorf("phases %+v: want connect and first byte", r.Phases)
	}
	if r.Phases.TLS != 0 || r.Phases.DNS != 0 {
		t.Errorf("phases %+v: no TLS nor DNS for plain HTTP to an IP", r.Phases)
	}
	if r.Phases.FirstByte > r.Duration || r.Phases.Connect > r.Phases.FirstByte {
		t.Errorf("phases %+v out of order, duration %v", r.Phases, r.Duration)
	}
}

func TestProbeHTTPDefaults(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Clone(context.Background())
	})
	r := ProbeHTTP(context.Background(), labels.Check{Name: "bare"}, hostPort(srv))
	wantResult(t, r, Success)
	req := <-got
	if req.Method != http.MethodGet || req.URL.Path != "/" || req.UserAgent() != userAgent {
		t.Errorf("request %s %s, user agent %q", req.Method, req.URL, req.UserAgent())
	}
}

func TestProbeHTTPDNSPhase(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	_, port, _ := net.SplitHostPort(hostPort(srv))
	r := ProbeHTTP(context.Background(), httpCheck(), net.JoinHostPort("localhost", port))
	if r.Result != Success {
		t.Skipf("localhost does not reach 127.0.0.1 here: %s", r.Reason)
	}
	if r.Phases.DNS <= 0 {
		t.Errorf("phases %+v: want a DNS phase for a name", r.Phases)
	}
}

func TestProbeHTTPSSkipVerify(t *testing.T) {
	sni := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case sni <- hi.ServerName:
		default:
		}
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	c := httpCheck()
	c.Scheme, c.TLSSkipVerify, c.ServerName = "https", true, "app.example.com"
	c.Body = regexp.MustCompile("^secure$")
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	if r.Phases.TLS <= 0 || r.Phases.Connect <= 0 || r.Phases.FirstByte <= 0 {
		t.Errorf("phases %+v: want connect, TLS and first byte", r.Phases)
	}
	if got := <-sni; got != "app.example.com" {
		t.Errorf("server name %q, want app.example.com", got)
	}
}

func TestProbeHTTPSVerifyFails(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := httpCheck()
	c.Scheme = "https"
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Error)
	t.Logf("reason %q", r.Reason)
	if !strings.Contains(r.Reason, "certificate") || strings.Contains(r.Reason, hostPort(srv)) {
		t.Errorf("reason %q: want a short one about the certificate", r.Reason)
	}
	if r.StatusCode != 0 {
		t.Errorf("status %d without a response", r.StatusCode)
	}
}

func TestProbeHTTPSToPlainServer(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	c := httpCheck()
	c.Scheme, c.TLSSkipVerify = "https", true
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Error)
	t.Logf("reason %q", r.Reason)
	if r.Reason == "" {
		t.Error("no reason")
	}
}

func TestProbeHTTPStatus(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "database is down")
		case "/maintenance":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c := httpCheck()
	c.Path = "/broken"
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "status 500 not in 200-399" || r.StatusCode != 500 || r.Output != "database is down" {
		t.Errorf("reason %q, status %d, output %q", r.Reason, r.StatusCode, r.Output)
	}

	c.Path = "/maintenance"
	c.Status = []labels.StatusRange{{Min: 500, Max: 599}}
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	if r.StatusCode != 503 {
		t.Errorf("status %d", r.StatusCode)
	}

	c.Path = "/broken"
	c.Status = []labels.StatusRange{{Min: 200, Max: 299}, {Min: 301, Max: 301}, {Min: 503, Max: 503}}
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "status 500 not in 200-299,301,503" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestFormatStatus(t *testing.T) {
	for _, tc := range []struct {
		rs   []labels.StatusRange
		want string
	}{
		{nil, "200-399"},
		{[]labels.StatusRange{{Min: 200, Max: 299}}, "200-299"},
		{[]labels.StatusRange{{Min: 200, Max: 299}, {Min: 301, Max: 301}}, "200-299,301"},
		{[]labels.StatusRange{{Min: 204, Max: 204}, {Min: 400, Max: 499}, {Min: 503, Max: 503}}, "204,400-499,503"},
	} {
		if got := FormatStatus(tc.rs); got != tc.want {
			t.Errorf("FormatStatus(%v) = %q, want %q", tc.rs, got, tc.want)
		}
	}
}

func TestProbeHTTPBody(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "ok")
		case "/degraded":
			io.WriteString(w, "degraded: disk full")
		case "/late":
			// The marker comes after the 64 KiB that are judged.
			io.WriteString(w, strings.Repeat("a", bodyLimit)+"MARKER")
		}
	})
	c := httpCheck()
	c.Body = regexp.MustCompile("^ok$")
	c.Path = "/ok"
	wantResult(t, ProbeHTTP(context.Background(), c, hostPort(srv)), Success)

	c.Path = "/degraded"
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "body does not match ^ok$" || r.Output != "degraded: disk full" || r.StatusCode != 200 {
		t.Errorf("reason %q, output %q, status %d", r.Reason, r.Output, r.StatusCode)
	}

	c.Path = "/late"
	c.Body = regexp.MustCompile("MARKER")
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "body does not match MARKER" {
		t.Errorf("reason %q", r.Reason)
	}
	if want := Truncate(strings.Repeat("a", bodyLimit), OutputLimit); r.Output != want {
		t.Errorf("output of %d bytes, want %d", len(r.Output), len(want))
	}
}

func TestProbeHTTPLargeBody(t *testing.T) {
	const size = 10 << 20
	chunk := []byte(strings.Repeat("x", 32<<10))
	release := make(chan struct{})
	sent := make(chan int, 1) // bytes the server wrote for "/" before the probe hung up
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10485760")
		written := 0
		if r.URL.Path == "/" {
			defer func() { sent <- written }()
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
		}
		for n := 0; n < size; n += len(chunk) {
			if r.URL.Path == "/stall" && n >= bodyLimit+drainLimit+len(chunk) {
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			k, err := w.Write(chunk)
			written += k
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { close(release) })
	c := httpCheck()
	c.Path = "/"
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	// The probe reads 64 KiB, drains at most 1 MiB and hangs up: the server cannot have
	// sent the whole 10 MiB (what it did send is that plus the sockets' buffers).
	if n := <-sent; n >= size {
		t.Errorf("the server sent all %d bytes: the body should not be read whole", n)
	}

	// Past what the probe reads and drains, the server stalls: only a probe that stops
	// reading returns before its timeout.
	c.Path = "/stall"
	c.Timeout = 1500 * time.Millisecond
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success) // a probe that read past the drain limit would time out

	c.Path = "/fail"
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	note := " … (captured 4096 of 65536 bytes)"
	if len(r.Output) > OutputLimit+len(note) || !strings.HasSuffix(r.Output, note) {
		t.Errorf("output of %d bytes ending %q", len(r.Output), r.Output[len(r.Output)-40:])
	}
}

func TestProbeHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	c := httpCheck()
	c.Timeout = 300 * time.Millisecond
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Timeout)
	if r.Reason != "timeout after 300ms" {
		t.Errorf("reason %q", r.Reason)
	}
	if r.Duration < c.Timeout || r.Duration > c.Timeout+5*time.Second {
		t.Errorf("duration %v for a timeout of %v", r.Duration, c.Timeout)
	}
	if r.Phases.Connect <= 0 || r.Phases.FirstByte != 0 {
		t.Errorf("phases %+v: connected, no first byte", r.Phases)
	}
}

func TestProbeHTTPTimeoutInBody(t *testing.T) {
	release := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	c := httpCheck()
	c.Timeout = 300 * time.Millisecond
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Timeout)
	if r.Reason != "timeout after 300ms" || r.StatusCode != 500 || r.Output != "partial" {
		t.Errorf("reason %q, status %d, output %q", r.Reason, r.StatusCode, r.Output)
	}
}

func TestProbeHTTPSilentServer(t *testing.T) {
	addr := silentListener(t)
	c := httpCheck()
	c.Timeout = 300 * time.Millisecond
	r := ProbeHTTP(context.Background(), c, addr)
	wantResult(t, r, Timeout)
	if r.Reason != "timeout after 300ms" || r.Duration > c.Timeout+5*time.Second {
		t.Errorf("reason %q, duration %v", r.Reason, r.Duration)
	}
}

func TestProbeHTTPDefaultTimeoutReason(t *testing.T) {
	addr := silentListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The caller's deadline comes first; the reason names the check's timeout.
	r := ProbeHTTP(ctx, labels.Check{Name: "web"}, addr)
	wantResult(t, r, Timeout)
	if r.Reason != "timeout after 5s" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestProbeHTTPCanceled(t *testing.T) {
	addr := silentListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	r := ProbeHTTP(ctx, httpCheck(), addr)
	wantResult(t, r, Error)
	if r.Reason != "stopped" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestProbeHTTPRefused(t *testing.T) {
	addr := closedPort(t)
	r := ProbeHTTP(context.Background(), httpCheck(), addr)
	wantResult(t, r, Error)
	if r.Reason != "connection refused" || r.Target != addr {
		t.Errorf("reason %q, target %q", r.Reason, r.Target)
	}
}

func TestProbeHTTPUnresolvable(t *testing.T) {
	// Go's resolver refuses .onion names itself (RFC 7686), without asking a server.
	r := ProbeHTTP(context.Background(), httpCheck(), "lookout-test.onion:80")
	wantResult(t, r, Error)
	t.Logf("reason %q", r.Reason)
	if !strings.Contains(r.Reason, "lookout-test.onion") {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&url.Error{Op: "Get", URL: "http://db:80/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}}},
			"DNS lookup of db failed: no such host"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, "no route to host"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection refused"},
		{&net.OpError{Op: "read", Net: "tcp", Err: errors.New("something odd")}, "something odd"},
		{io.ErrUnexpectedEOF, "connection closed by the server"},
		{errors.New(strings.Repeat("x", 1000)), strings.Repeat("x", reasonLimit) + "…"},
	} {
		if got := describe(tc.err); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestProbeHTTPServerHangsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	r := ProbeHTTP(context.Background(), httpCheck(), ln.Addr().String())
	wantResult(t, r, Error)
	if r.Reason != "connection closed by the server" && r.Reason != "connection reset by peer" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestProbeHTTPBadScheme(t *testing.T) {
	c := httpCheck()
	c.Scheme = "ftp"
	r := ProbeHTTP(context.Background(), c, "127.0.0.1:21")
	wantResult(t, r, Error)
	if r.Reason != `unsupported scheme "ftp"` {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestProbeHTTPRedirect(t *testing.T) {
	other := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			w.WriteHeader(http.StatusGone)
			return
		}
		io.WriteString(w, "final")
	})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved": // another server on the same host
			http.Redirect(w, r, other.URL+"/final", http.StatusFound)
		case "/moved-gone":
			http.Redirect(w, r, other.URL+"/gone", http.StatusFound)
		case "/relative":
			http.Redirect(w, r, "/moved", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/away":
			http.Redirect(w, r, "http://lookout-test.onion/", http.StatusFound)
		}
	})
	c := httpCheck()
	c.Path = "/moved"

	// Not followed: the redirect is judged by its own status.
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	if r.StatusCode != http.StatusFound {
		t.Errorf("status %d", r.StatusCode)
	}
	c.Status = []labels.StatusRange{{Min: 200, Max: 299}}
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "status 302 not in 200-299" {
		t.Errorf("reason %q", r.Reason)
	}

	// Followed: the final response is judged.
	c.FollowRedirects = true
	c.Body = regexp.MustCompile("^final$")
	for _, path := range []string{"/moved", "/relative"} {
		c.Path = path
		r = ProbeHTTP(context.Background(), c, hostPort(srv))
		wantResult(t, r, Success)
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", path, r.StatusCode)
		}
	}
	c.Body = nil
	c.Status = nil
	c.Path = "/moved-gone"
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "status 410 not in 200-399" {
		t.Errorf("reason %q", r.Reason)
	}

	c.Path = "/loop"
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "stopped after 10 redirects" || r.StatusCode != http.StatusFound {
		t.Errorf("reason %q, status %d", r.Reason, r.StatusCode)
	}

	c.Path = "/away"
	r = ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Failure)
	if r.Reason != "refused: redirect to another host not followed: http://lookout-test.onion/" || r.StatusCode != http.StatusFound || !r.Refused {
		t.Errorf("reason %q, status %d", r.Reason, r.StatusCode)
	}
}

func TestProbeHTTPRedirectCount(t *testing.T) {
	// A chain of exactly 10 redirects is followed.
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n >= 10 {
			io.WriteString(w, "end")
			return
		}
		http.Redirect(w, r, "/?n="+strconv.Itoa(n+1), http.StatusFound)
	})
	c := httpCheck()
	c.Path, c.FollowRedirects = "/?n=0", true
	c.Body = regexp.MustCompile("end")
	wantResult(t, ProbeHTTP(context.Background(), c, hostPort(srv)), Success)
}

func TestProbeHTTPRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := r.Clone(context.Background())
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		got <- req
		w.Header().Set("X-Seen", "yes")
		io.WriteString(w, "body for GET and POST")
	})
	c := httpCheck()
	c.Method = http.MethodPost
	c.Headers = http.Header{
		"X-Token":    {"abc"},
		"Accept":     {"application/json"},
		"User-Agent": {"custom/1"},
		"Host":       {"app.example.com"},
	}
	wantResult(t, ProbeHTTP(context.Background(), c, hostPort(srv)), Success)
	req := <-got
	if req.Method != http.MethodPost || req.Host != "app.example.com" ||
		req.Header.Get("X-Token") != "abc" || req.Header.Get("Accept") != "application/json" || req.UserAgent() != "custom/1" {
		t.Errorf("request %s host %q headers %v", req.Method, req.Host, req.Header)
	}
	if req.Header.Get("Host") != "" {
		t.Errorf("Host sent as a header too: %v", req.Header)
	}
	if b, _ := io.ReadAll(req.Body); len(b) != 0 {
		t.Errorf("POST body %q", b)
	}

	c.Method = http.MethodHead
	c.Body = regexp.MustCompile("^$")
	r := ProbeHTTP(context.Background(), c, hostPort(srv))
	wantResult(t, r, Success)
	if req := <-got; req.Method != http.MethodHead {
		t.Errorf("method %s", req.Method)
	}
}

func TestProbeHTTPHostHeaderKeptOnRelativeRedirect(t *testing.T) {
	hosts := make(chan string, 2)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/home", http.StatusFound)
		}
	})
	c := httpCheck()
	c.Path, c.FollowRedirects = "/", true
	c.Headers = http.Header{"Host": {"app.example.com"}}
	wantResult(t, ProbeHTTP(context.Background(), c, hostPort(srv)), Success)
	for i := 0; i < 2; i++ {
		if h := <-hosts; h != "app.example.com" {
			t.Errorf("request %d: host %q", i, h)
		}
	}
}

func TestHTTPResultPoint(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom")
	})
	r := ProbeHTTP(context.Background(), httpCheck(), hostPort(srv))
	wantResult(t, r, Failure)
	p := r.Point(map[string]string{"container_name": "web-1"})
	if p.Name != Measurement {
		t.Errorf("measurement %q", p.Name)
	}
	for k, want := range map[string]string{"check": "web", "type": "http", "result": "failure", "container_name": "web-1"} {
		if got := p.Tag(k); got != want {
			t.Errorf("tag %s = %q, want %q", k, got, want)
		}
	}
	if v := p.Field("http_response_code"); v != int64(500) {
		t.Errorf("http_response_code %#v", v)
	}
	for _, k := range []string{"response_time", "first_byte_time", "connect_time"} {
		if v, ok := p.Field(k).(float64); !ok || v <= 0 {
			t.Errorf("%s %#v", k, p.Field(k))
		}
	}
	if v := p.Field("reason"); v != "status 500 not in 200-399" {
		t.Errorf("reason %#v", v)
	}
	if v := p.Field("output"); v != "boom" {
		t.Errorf("output %#v", v)
	}
	if v := p.Field("success"); v != int64(0) {
		t.Errorf("success %#v", v)
	}
	if v := p.Field("target"); v != hostPort(srv) {
		t.Errorf("target %#v", v)
	}
	if p.Field("tls_time") != nil || p.Field("dns_time") != nil {
		t.Errorf("zero phases written: %v", p.Fields)
	}

	ok := ProbeHTTP(context.Background(), labels.Check{Name: "web"}, closedPort(t))
	p = ok.Point(nil)
	if p.Tag("result") != "error" || p.Field("reason") != "connection refused" || p.Field("http_response_code") != nil {
		t.Errorf("point of a refused probe: %+v", p)
	}
}
