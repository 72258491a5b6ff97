package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
)

const (
	defaultTimeout = 5 * time.Second
	bodyLimit      = 64 << 10 // bytes of an HTTP body read and judged
	drainLimit     = 1 << 20  // bytes more read and thrown away before closing
	maxRedirects   = 10
	headerLimit    = 1 << 20 // response header bytes accepted
	reasonLimit    = 256
	keptBodyBuffer = 4 << 10 // a body buffer larger than this is not kept between runs
	userAgent      = "lookout-healthcheck"
	stoppedReason  = "stopped" // the caller canceled the probe
)

// defaultStatus is what an HTTP check accepts when it names no status.
var defaultStatus = []labels.StatusRange{{Min: 200, Max: 399}}

// ProbeHTTP runs one HTTP check against addr, a resolved "host:port" (normally the
// container's IP and port). c.Timeout (5s if unset) bounds the whole probe: connecting,
// the TLS handshake, the response and reading the body.
//
// ProbeHTTP uses a transport of its own with keep-alives off, and no proxy; a check that
// runs again and again uses an HTTPRunner, which keeps one idle connection between runs. At most 64 KiB of the
// body is read and judged; up to 1 MiB more is drained before closing. The body is kept
// as Output only when the result is not a success.
//
// A redirect is judged by its own status unless c.FollowRedirects is set; then at most
// 10 are followed, and only to the probed host (any port): a redirect to another host is
// not followed, and is a failure, so that a container cannot send the agent to machines
// its configuration does not allow.
func ProbeHTTP(ctx context.Context, c labels.Check, addr string) Result {
	p := newHTTPRunner(c, false)
	defer p.Close()
	return p.Probe(ctx, c, addr)
}

// HTTPRunner runs one HTTP check again and again over one kept-alive connection, as
// Telegraf's http_response does: no TCP and TLS handshake a run while the container keeps
// the connection open. A run on a new connection reports its DNS, connect and TLS phases;
// a run on a reused one leaves them out. Close it when the check stops.
//
// Runs of one prober are taken one after another, never at once. What does not change
// between runs (the request, the client) is made once and made again when the target
// changes; the buffer that reads the body is reused.
type HTTPRunner struct {
	chk labels.Check // the check Run runs
	tr  *http.Transport

	// The request of the last run, and what it was made from.
	key    requestKey
	req    *http.Request // its context is replaced each run
	client *http.Client
	reason string // why the request cannot be made, if it cannot
	body   []byte // the last body read, kept for the next run when small
}

// requestKey is what a prober's request is made from.
type requestKey struct {
	addr, scheme, path, method string
	headers                    map[string][]string // compared by identity: a check's own
	follow                     bool
}

// HTTP is the Prober of HTTP checks: a check run again and again keeps one connection
// (HTTPRunner), a single run (keep false) does not.
type HTTP struct{}

var _ Prober = HTTP{}

// Runner implements Prober.
func (HTTP) Runner(chk labels.Check, keep bool) Runner { return newHTTPRunner(chk, keep) }

// NewHTTPRunner returns a runner of check c that keeps its connection between runs.
func NewHTTPRunner(c labels.Check) *HTTPRunner { return newHTTPRunner(c, true) }

func newHTTPRunner(c labels.Check, keepAlive bool) *HTTPRunner {
	return &HTTPRunner{chk: c, tr: &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            dialer(c),
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: c.TLSSkipVerify, ServerName: c.ServerName}, //nolint:gosec // the check's own setting
		DisableKeepAlives:      !keepAlive,
		MaxIdleConns:           1,
		MaxIdleConnsPerHost:    1,
		IdleConnTimeout:        2*c.Interval + 5*time.Second,
		MaxResponseHeaderBytes: headerLimit,
	}}
}

// dialer returns how check c connects: to a host its label names through the guard, to
// the container's own address (from Docker's inspection) as it is.
func dialer(c labels.Check) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Host != "" {
		return labelHosts.DialContext
	}
	return (&net.Dialer{}).DialContext
}

// Close drops the kept connection.
func (p *HTTPRunner) Close() { p.tr.CloseIdleConnections() }

// Run implements Runner: it runs the runner's check against addr; see Probe.
func (p *HTTPRunner) Run(ctx context.Context, _ *inventory.Container, addr string) Result {
	return p.Probe(ctx, p.chk, addr)
}

// Probe runs check c against addr once; see ProbeHTTP.
func (p *HTTPRunner) Probe(ctx context.Context, c labels.Check, addr string) Result {
	start := time.Now()
	res := Result{Check: c.Name, Type: labels.CheckHTTP, Start: start, Target: addr}
	timeout := probeTimeout(c)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	pt := &phaseTrace{start: start}
	finish := func(result, reason string, body []byte) Result {
		res.Duration = time.Since(start)
		res.Result, res.Reason = result, reason
		if result != Success && len(body) > 0 {
			res.Output = Truncate(string(body), OutputLimit)
		}
		res.Phases = pt.phases()
		return res
	}

	tmpl, client, reason := p.request(c, addr)
	if tmpl == nil {
		return finish(Error, reason, nil)
	}
	req := tmpl.WithContext(httptrace.WithClientTrace(pctx, pt.clientTrace()))
	if h := requestHeaders(ctx); len(h) > 0 {
		req.Header = req.Header.Clone() // the copy's, not the template's
		for k, vs := range h {
			req.Header[k] = vs
		}
	}

	resp, err := client.Do(req)
	if err != nil {
		var re *redirectError
		if errors.As(err, &re) && resp != nil { // resp is the redirect not followed, its body closed
			res.StatusCode, res.Refused = resp.StatusCode, re.refused
			return finish(Failure, re.reason, nil)
		}
		result, reason := classify(ctx, pctx, err, timeout)
		res.Refused = isRefused(err)
		return finish(result, reason, nil)
	}
	res.StatusCode = resp.StatusCode
	body, readErr := readBody(p.body[:0], resp.Body)
	if cap(body) <= keptBodyBuffer {
		p.body = body
	}
	if readErr == nil {
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	_ = resp.Body.Close()

	status := c.Status
	if len(status) == 0 {
		status = defaultStatus
	}
	if readErr != nil && (pctx.Err() != nil || isTimeout(readErr)) {
		result, reason := classify(ctx, pctx, readErr, timeout)
		return finish(result, reason, body)
	}
	switch {
	case !statusAccepted(resp.StatusCode, status):
		return finish(Failure, fmt.Sprintf("status %d not in %s", resp.StatusCode, FormatStatus(status)), body)
	case readErr != nil:
		return finish(Error, capReason("reading the body: "+describe(readErr)), body)
	case c.Body != nil && !c.Body.Match(body):
		return finish(Failure, capReason("body does not match "+c.Body.String()), body)
	}
	return finish(Success, "", nil)
}

// request returns the request and the client for check c against addr, made anew when
// they changed since the last run, or (nil and) why the request cannot be made. The
// request is a template: a run takes a copy with its own context, and clones the header
// before adding to it.
func (p *HTTPRunner) request(c labels.Check, addr string) (*http.Request, *http.Client, string) {
	key := requestKey{addr: addr, scheme: c.Scheme, path: c.Path, method: c.Method, headers: c.Headers, follow: c.FollowRedirects}
	if key.scheme == "" {
		key.scheme = "http"
	}
	if key.path == "" {
		key.path = "/"
	}
	if key.method == "" {
		key.method = http.MethodGet
	}
	if (p.req != nil || p.reason != "") && sameRequest(key, p.key) {
		return p.req, p.client, p.reason
	}
	p.key, p.req, p.client, p.reason = key, nil, nil, ""
	if key.scheme != "http" && key.scheme != "https" {
		p.reason = fmt.Sprintf("unsupported scheme %q", key.scheme)
		return nil, nil, p.reason
	}
	req, err := http.NewRequest(key.method, key.scheme+"://"+addr+key.path, nil)
	if err != nil {
		p.reason = capReason("invalid request: " + err.Error())
		return nil, nil, p.reason
	}
	for k, vs := range c.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	p.req = req
	p.client = &http.Client{Transport: p.tr, CheckRedirect: redirectPolicy(c.FollowRedirects, req.URL.Hostname())}
	return p.req, p.client, ""
}

// sameRequest says whether two keys make the same request; headers are the same map or
// both empty.
func sameRequest(a, b requestKey) bool {
	if a.addr != b.addr || a.scheme != b.scheme || a.path != b.path || a.method != b.method || a.follow != b.follow {
		return false
	}
	if len(a.headers) == 0 || len(b.headers) == 0 {
		return len(a.headers) == len(b.headers)
	}
	return reflect.ValueOf(a.headers).UnsafePointer() == reflect.ValueOf(b.headers).UnsafePointer()
}

// readBody reads up to bodyLimit bytes of r into buf, growing it as needed.
func readBody(buf []byte, r io.Reader) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for len(buf) < bodyLimit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), bodyLimit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// FormatStatus writes accepted status ranges as a check label does: "200-299,301".
// An empty list is written as the default, "200-399".
func FormatStatus(rs []labels.StatusRange) string {
	if len(rs) == 0 {
		rs = defaultStatus
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.Min))
		if r.Max != r.Min {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.Max))
		}
	}
	return b.String()
}

func statusAccepted(code int, rs []labels.StatusRange) bool {
	for _, r := range rs {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

func probeTimeout(c labels.Check) time.Duration {
	if c.Timeout <= 0 {
		return defaultTimeout
	}
	return c.Timeout
}

// redirectError stops the client at a redirect that is not followed; the response
// carrying the redirect is judged a failure with reason. refused: the redirect goes to
// another host.
type redirectError struct {
	reason  string
	refused bool
}

func (e *redirectError) Error() string { return e.reason }

func redirectPolicy(follow bool, host string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) > maxRedirects {
			return &redirectError{reason: fmt.Sprintf("stopped after %d redirects", maxRedirects)}
		}
		if !strings.EqualFold(req.URL.Hostname(), host) {
			return &redirectError{reason: capReason("refused: redirect to another host not followed: " + req.URL.Redacted()), refused: true}
		}
		return nil
	}
}

// classify turns the error of a probe into a result: a timeout of the probe's own
// context, the caller stopping the probe, or an error saying why it could not run.
func classify(parent, probe context.Context, err error, timeout time.Duration) (result, reason string) {
	if errors.Is(parent.Err(), context.Canceled) {
		return Error, stoppedReason
	}
	if probe.Err() != nil || isTimeout(err) {
		return Timeout, "timeout after " + timeout.String()
	}
	return Error, describe(err)
}

// isRefused says whether err is a refusal of where a check asked to go.
func isRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describe says briefly why a connection or an exchange failed. The address is left out:
// it is in the result's Target.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network is unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		return capReason("refused: " + refused.Reason)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return capReason("DNS lookup of " + dnsErr.Name + " failed: " + dnsErr.Err)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return capReason("TLS certificate not accepted: " + certErr.Err.Error())
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		err = opErr.Err
	}
	return capReason(err.Error())
}

func capReason(s string) string {
	if len(s) <= reasonLimit {
		return s
	}
	return s[:reasonLimit] + "…"
}

// phaseTrace records the phases of an HTTP probe. Its hooks may run on the transport's
// dialing goroutine, even after the probe has returned, hence the lock. Connection
// phases add up over the connections made (one per redirect followed); FirstByte runs
// from the start of the probe to the first byte of the last response.
type phaseTrace struct {
	mu                 sync.Mutex
	start              time.Time
	dnsStart, tlsStart time.Time
	conns              map[string]time.Time // connection attempts under way, by address
	p                  Phases
}

func (t *phaseTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) {
			t.mu.Lock()
			t.dnsStart = time.Now()
			t.mu.Unlock()
		},
		DNSDone: func(httptrace.DNSDoneInfo) {
			t.mu.Lock()
			if !t.dnsStart.IsZero() {
				t.p.DNS += time.Since(t.dnsStart)
				t.dnsStart = time.Time{}
			}
			t.mu.Unlock()
		},
		ConnectStart: func(network, addr string) {
			t.mu.Lock()
			if t.conns == nil {
				t.conns = map[string]time.Time{}
			}
			t.conns[network+" "+addr] = time.Now()
			t.mu.Unlock()
		},
		ConnectDone: func(network, addr string, err error) {
			t.mu.Lock()
			if s, ok := t.conns[network+" "+addr]; ok {
				delete(t.conns, network+" "+addr)
				if err == nil {
					t.p.Connect += time.Since(s)
				}
			}
			t.mu.Unlock()
		},
		TLSHandshakeStart: func() {
			t.mu.Lock()
			t.tlsStart = time.Now()
			t.mu.Unlock()
		},
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			t.mu.Lock()
			if !t.tlsStart.IsZero() {
				t.p.TLS += time.Since(t.tlsStart)
				t.tlsStart = time.Time{}
			}
			t.mu.Unlock()
		},
		GotFirstResponseByte: func() {
			t.mu.Lock()
			t.p.FirstByte = time.Since(t.start)
			t.mu.Unlock()
		},
	}
}

func (t *phaseTrace) phases() Phases {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p
}
