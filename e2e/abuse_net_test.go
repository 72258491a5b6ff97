package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// Abuse at the agent's network inputs (issue 13 item 2): each scenario runs the static
// build, the one the image holds, and holds its peak resident memory under the stack's
// limit (agentMemoryLimit) while the input is hostile; each checks that what was refused
// or dropped is counted and that the input works again afterwards.

// A container floods the jaeger-agent relay with UDP packets of big spans, and garbage,
// far faster than the relay can export them: here the collector is away during the
// flood, so the export rate is zero and the flood's fate is decided by the bounds alone.
// Every packet the relay does not pass on is counted (the kernel's socket drops,
// malformed packets, spans the queue had no room for), the memory stays bounded, and
// once the flood is over and the collector back, a service's spans arrive.
func TestAbuseNetUDPFlood(t *testing.T) {
	j := startJaeger(t)
	gw := bridgeGateway(t)
	compact := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreeUDPPort()))
	a := startStaticAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.CollectorURL, "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_PROBE_SPANS=false", "LOOKOUT_JAEGER_COMPACT_LISTEN="+compact)
	eventually(t, 20*time.Second, "the relay listening", func() bool { return strings.Contains(a.logs(), "span relay listening") })
	j.Stop()

	// Two floods: big spans (one span of 60,000 bytes a packet), then many small ones
	// (100 spans of 200 bytes a packet); every tenth packet is garbage.
	sentRE := regexp.MustCompile(`flood: sent (\d+) packets \((\d+) malformed`)
	var sent, malformed int64
	for _, f := range []struct{ name, packets, spans, tag string }{
		{"big", "4000", "1", "60000"},
		{"many", "4000", "100", "200"},
	} {
		name := "lk-abuse-flood-" + f.name + "-" + runID
		spanSender.runCmd(t, name, []string{"JAEGER_AGENT=" + compact, "SERVICE=flood-" + runID}, nil, "flood", f.packets, f.spans, f.tag)
		waitInspect(t, 2*time.Minute, name, "{{.State.Status}}", "exited")
		out := docker(t, "logs", name)
		m := sentRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("flood %s: %q", f.name, out)
		}
		t.Logf("flood %s: %s", f.name, out)
		n, _ := strconv.ParseInt(m[1], 10, 64)
		k, _ := strconv.ParseInt(m[2], 10, 64)
		sent, malformed = sent+n, malformed+k
	}
	field := func(f string) int64 { return lastField(a, "lookout_spans_relay", f) }
	// Every packet the relay read is counted, and the kernel's drops are counted with
	// the next packet read: a packet after the flood brings the last count.
	probe := "lk-abuse-flood-probe-" + runID
	spanSender.runCmd(t, probe, []string{"JAEGER_AGENT=" + compact, "SERVICE=flood-" + runID}, nil, "flood", "1", "1", "10")
	waitInspect(t, time.Minute, probe, "{{.State.Status}}", "exited")
	relayLines := regexp.MustCompile(`(?m)^lookout_spans_relay[ ,].*$`)
	eventually(t, 30*time.Second, "the relay's counters to settle after the floods (two reports alike)", func() bool {
		l := relayLines.FindAllString(a.out(), -1)
		return len(l) >= 2 && field("packets_dropped_malformed") > 0 &&
			strings.SplitN(l[len(l)-1], " ", 3)[1] == strings.SplitN(l[len(l)-2], " ", 3)[1]
	})
	a.underMemoryLimit(t, "UDP flood")
	received, socket, bad := field("packets_received"), field("packets_dropped_socket_full"), field("packets_dropped_malformed")
	queueFull := field("spans_dropped_queue_full")
	t.Logf("sent %d packets (%d garbage): relay received %d, %d malformed, %d dropped by the kernel (socket buffer full), %d spans dropped (queue full); queue: %d spans held",
		sent+1, malformed, received, bad, socket, queueFull, lastField(a, "lookout_spans_export", "queued"))
	if bad > malformed {
		t.Errorf("%d packets counted malformed, %d garbage sent", bad, malformed)
	}
	if received+socket > sent+1 {
		t.Errorf("%d received + %d dropped by the kernel > %d sent", received, socket, sent+1)
	}
	// Where the relay reads faster than the kernel's buffer fills, the queue fills (with
	// this machine's 4 MiB receive buffer it does every time); else the kernel drops.
	if queueFull+socket == 0 {
		t.Errorf("nothing dropped, by the queue or the kernel, of a flood of %d packets with the collector away", sent)
	}

	// The collector comes back; a service's spans after the flood arrive.
	if err := j.Start(); err != nil {
		t.Fatal(err)
	}
	service := "after-flood-" + runID
	runSpanSender(t, "lk-abuse-after-flood-"+runID, compact, service, 10)
	eventually(t, 90*time.Second, "the spans of a service after the flood in Jaeger", func() bool {
		spans, _ := spansOf(t, j, service)
		return len(spans) > 0
	})
	a.underMemoryLimit(t, "UDP flood, after")
}

// gzipBomb is a gzip body that decompresses to n×64 MiB of zeros: one member compressing
// 64 MiB (about 64 KiB), n times (a gzip reader reads concatenated members as one stream).
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for range 64 {
		_, _ = zw.Write(zero)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), n)
}

// grpcFrame is a gRPC length-prefixed message, flagged compressed or not.
func grpcFrame(msg []byte, compressed bool) []byte {
	b := make([]byte, 5, 5+len(msg))
	if compressed {
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// h2c is an HTTP/2 client without TLS, as the SDKs' insecure gRPC exporters dial.
func h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: time.Minute}
}

// grpcExport makes one TraceService/Export call with body and returns grpc-status and
// grpc-message (from the headers of a trailers-only answer, or the trailers).
func grpcExport(t *testing.T, c *http.Client, addr string, body []byte, gzipped bool) (string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/opentelemetry.proto.collector.trace.v1.TraceService/Export", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if gzipped {
		req.Header.Set("Grpc-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("gRPC Export: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		return s, resp.Header.Get("Grpc-Message")
	}
	return resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
}

// rawHTTP writes head to addr, then what more writes (until it fails or the answer
// came), and returns the answer's status and body and how many bytes were written in all.
func rawHTTP(t *testing.T, addr, head string, more func(w io.Writer) error) (int, string, int64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw := &countingWriter{w: c}
	answered := make(chan struct{})
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		if _, err := io.WriteString(cw, head); err != nil {
			return
		}
		for {
			select {
			case <-answered:
				return
			default:
			}
			if err := more(cw); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	close(answered)
	if err != nil {
		t.Fatalf("no answer after %d bytes written: %v", cw.n.Load(), err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	c.Close()
	<-writeDone
	return resp.StatusCode, string(body), cw.n.Load()
}

type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// An OTLP request whose body gunzips to gigabytes, over OTLP/HTTP and OTLP/gRPC, is
// refused at the limit (413; RESOURCE_EXHAUSTED) naming it, and counted; so are an endless
// chunked body and endless headers (431); 1,000 connections sending headers slowly are
// served 64 at a time. Several bombs at once leave the memory bounded,
// and the next good request is taken and its span reaches Jaeger.
func TestAbuseNetOTLPBombs(t *testing.T) {
	j := startJaeger(t)
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort()))
	grpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort()))
	a := startStaticAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.OTLPURL, "LOOKOUT_JAEGER_PROTOCOL=otlp", "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms",
		"LOOKOUT_INTERVAL=1s", "LOOKOUT_PROBE_SPANS=false", "LOOKOUT_OTLP_LISTEN="+httpAddr, "LOOKOUT_OTLP_GRPC_LISTEN="+grpcAddr)
	eventually(t, 20*time.Second, "the OTLP receivers listening", func() bool {
		return strings.Contains(a.logs(), "OTLP receiver listening") && strings.Contains(a.logs(), "OTLP/gRPC receiver listening")
	})
	const limit = "4194304" // LOOKOUT_OTLP_MAX_REQUEST_SIZE's default
	bomb := gzipBomb(t, 32) // 2 GiB of zeros, about 2 MiB on the wire: under the limit compressed
	grpcBomb := grpcFrame(bomb, true)
	url := "http://" + httpAddr + "/v1/traces"
	postBomb := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bomb))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST the gzip bomb: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}

	// One bomb over each protocol.
	if code, body := postBomb(); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, limit) {
		t.Errorf("OTLP/HTTP gzip bomb: %d %q, want 413 naming the limit %s", code, body, limit)
	}
	gc := h2c()
	if st, msg := grpcExport(t, gc, grpcAddr, grpcBomb, true); st != "8" || !strings.Contains(msg, limit) {
		t.Errorf("OTLP/gRPC gzip bomb: grpc-status %s %q, want 8 (RESOURCE_EXHAUSTED) naming the limit %s", st, msg, limit)
	}

	// An endless chunked body, and endless headers.
	chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte{0x0a}, 64<<10)))
	code, body, n := rawHTTP(t, httpAddr, "POST /v1/traces HTTP/1.1\r\nHost: lookout\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n",
		func(w io.Writer) error { _, err := w.Write(chunk); return err })
	t.Logf("endless chunked body: %d %q after %d bytes written", code, body, n)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, limit) {
		t.Errorf("endless chunked body: %d %q, want 413 naming the limit %s", code, body, limit)
	}
	header := []byte("X-Endless: " + strings.Repeat("h", 1000) + "\r\n")
	code, body, n = rawHTTP(t, httpAddr, "POST /v1/traces HTTP/1.1\r\nHost: lookout\r\n",
		func(w io.Writer) error { _, err := w.Write(header); return err })
	t.Logf("endless headers: %d %q after %d bytes written", code, body, n)
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("endless headers: %d %q, want 431", code, body)
	}

	// Many connections sending headers slowly: 1,000 of 60,000 bytes each, never ended.
	// The receiver serves 64 connections at once; the rest wait in the kernel's backlog.
	slow := make([]net.Conn, 0, 1000)
	for range 1000 {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(slow)+1, err)
		}
		slow = append(slow, c)
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "POST /v1/traces HTTP/1.1\r\nHost: lookout\r\nX-Slow: "+strings.Repeat("s", 60000)); err != nil {
			t.Fatalf("connection %d: %v", len(slow), err)
		}
	}
	a.underMemoryLimit(t, "1,000 connections sending headers slowly")
	for _, c := range slow {
		c.Close()
	}

	// Bombs at once, sixteen over each protocol: each is refused, as too large or, once
	// the receivers hold their budget of request bytes, as busy (503, UNAVAILABLE).
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			code, _ := postBomb()
			mu.Lock()
			answers["HTTP "+strconv.Itoa(code)]++
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			st, _ := grpcExport(t, h2c(), grpcAddr, grpcBomb, true)
			mu.Lock()
			answers["gRPC "+st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("32 bombs at once: %v", answers)
	if answers["HTTP 413"]+answers["HTTP 503"] != 16 || answers["gRPC 8"]+answers["gRPC 14"] != 16 {
		t.Errorf("32 bombs at once answered %v: want each 413 / 8 (too large) or 503 / 14 (busy)", answers)
	}
	a.underMemoryLimit(t, "OTLP bombs")

	// Counted, and the next good requests are taken.
	counted := func(m string) int64 { return lastField(a, m, "requests_too_large") + lastField(a, m, "requests_busy") }
	eventually(t, 20*time.Second, "the refused requests counted", func() bool {
		return counted("lookout_spans_otlp") == 18 && counted("lookout_spans_otlp_grpc") == 17
	})
	service := "after-bombs-" + runID
	good, err := proto.Marshal(everyField(bytes.Repeat([]byte{0xb0}, 16), service, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a good OTLP/HTTP request after the bombs: %s", resp.Status)
	}
	goodGRPC, _ := proto.Marshal(everyField(bytes.Repeat([]byte{0xb1}, 16), service, time.Now()))
	if st, msg := grpcExport(t, gc, grpcAddr, grpcFrame(goodGRPC, false), false); st != "0" {
		t.Errorf("a good OTLP/gRPC call after the bombs: grpc-status %s %q", st, msg)
	}
	eventually(t, 30*time.Second, "both good requests' spans in Jaeger", func() bool {
		spans, _ := spansOf(t, j, service)
		return len(spans) >= 4
	})
	for _, m := range []string{"lookout_spans_otlp", "lookout_spans_otlp_grpc"} {
		t.Logf("%s: requests_too_large=%d requests_busy=%d", m, lastField(a, m, "requests_too_large"), lastField(a, m, "requests_busy"))
	}
}

// silentFluentd accepts connections on addr and never answers: it reads and discards
// what comes (no ack, no HELO) or, once deaf is set, reads nothing at all.
type silentFluentd struct {
	l     net.Listener
	deaf  atomic.Bool
	conns atomic.Int64 // accepted
	read  atomic.Int64 // bytes read
	mu    sync.Mutex
	open  []net.Conn
}

func startSilentFluentd(t *testing.T, addr string) *silentFluentd {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &silentFluentd{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			if s.deaf.Load() {
				continue // held open, never read
			}
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					s.read.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener and every connection it accepted.
func (s *silentFluentd) stop() {
	s.l.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		c.Close()
	}
	s.open = nil
}

// A Fluentd that accepts the connection and never answers, first reading and discarding
// everything, then reading nothing: the forwarder times out (LOOKOUT_FLUENTD_TIMEOUT),
// counts the batches it must send again (retried), keeps reading paused behind its bounded
// buffer (Docker keeps the log; nothing dropped), keeps the memory bounded and the rest of
// the agent going (checks run, reports continue), and once a real Fluentd answers on that
// address every line arrives, none twice.
func TestAbuseNetFluentdSilent(t *testing.T) {
	const n, batch = 3000, 100
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort()))
	silent := startSilentFluentd(t, addr)
	f := startFluentd(t) // builds the log image too
	a := startStaticAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+addr, "LOOKOUT_FLUENTD_TIMEOUT=1s", fmt.Sprintf("LOOKOUT_FLUENTD_BATCH_SIZE=%d", batch),
		"LOOKOUT_FLUENTD_BUFFER_LIMIT=1000", "LOOKOUT_INTERVAL=1s")
	name := "lk-abuse-fluentd-" + runID
	runLogContainer(t, name, []string{"--label", "lookout.enable=true"}, "seq", "s", strconv.Itoa(n), "2ms")
	checked := "lk-abuse-fluentd-checked-" + runID
	runContainer(t, checked, "--label", "lookout.enable=true", "--label", "lookout.logs=false",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s")
	checkRE := regexp.MustCompile(`(?m)^lookout_check,.*container_name=` + regexp.QuoteMeta(checked) + `[, ].*\n`)
	checks := func() int { return len(checkRE.FindAllString(a.out(), -1)) }
	total := func(f string) int64 { return lastField(a, "lookout_logs_total", f) }

	// Reading and discarding: timeouts, and the batches sent again counted.
	eventually(t, 60*time.Second, "three connections to the silent Fluentd, batches retried", func() bool {
		return silent.conns.Load() >= 3 && silent.read.Load() > 0 && total("retried") > 0
	})
	// Reading nothing: the same.
	silent.deaf.Store(true)
	deafFrom, checksFrom := silent.conns.Load(), checks()
	retried := total("retried")
	eventually(t, 60*time.Second, "two connections to the deaf Fluentd, more batches retried", func() bool {
		return silent.conns.Load() >= deafFrom+2 && total("retried") > retried
	})
	// The rest of the agent goes on: check results keep coming while Fluentd stays deaf.
	eventually(t, 60*time.Second, "check results reported while Fluentd is deaf", func() bool { return checks() > checksFrom+2 })
	// The container was never held up: its whole sequence is in Docker's own log.
	eventually(t, 60*time.Second, "the container's last line in its own log", func() bool {
		return strings.Contains(docker(t, "logs", name), fmt.Sprintf("s %d", n))
	})
	a.underMemoryLimit(t, "silent Fluentd")
	t.Logf("silent Fluentd: %d connections, %d bytes read; retried=%d dropped=%d lines=%d",
		silent.conns.Load(), silent.read.Load(), total("retried"), total("dropped"), total("lines"))
	if d := total("dropped"); d != 0 {
		t.Errorf("dropped=%d while Fluentd was silent: reading should pause, not drop", d)
	}

	// A real Fluentd answers on that address: every line arrives.
	silent.stop()
	p, err := testpeer.Forward(addr, "tcp", f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Cut)
	eventually(t, 90*time.Second, "every line at the real Fluentd", func() bool { return countLines(recordsOf(t, f, name))[fmt.Sprintf("s %d", n)] >= 1 })
	dups := lostAndRepeated(t, countLines(recordsOf(t, f, name)), "s", n)
	t.Logf("%d lines delivered after the silence, %d twice; retried=%d", n, dups, total("retried"))
	// What went to the silent peer was never acknowledged, so it is sent again, but it
	// reached no one: the real Fluentd gets each line once.
	if dups != 0 {
		t.Errorf("%d lines arrived twice", dups)
	}
	a.underMemoryLimit(t, "silent Fluentd, after")
}
