// Command fluentd-receiver is the Fluentd forward-protocol server that Lookout's tests and
// benchmarks send logs to: the OpenTelemetry Collector's fluentforward receiver (message,
// Forward and PackedForward modes, gzip, EventTime, acks for the `chunk` option), with a
// consumer that writes every record it gets as one JSON line.
//
//	fluentd-receiver -listen 127.0.0.1:24224 -out records.jsonl
//
// Each line: {"tag":…, "time_ns":…, "record":{…}, "log_b64":…}; log_b64 holds the exact
// bytes of the record's log (or message) field, which JSON would not keep when they are
// not UTF-8.
//
// The receiver acknowledges a chunk as soon as it has queued it, before the consumer has
// written it. So that a stop loses nothing it acknowledged, clients reach it through a
// proxy in this program: on SIGINT/SIGTERM the proxy stops forwarding (unacknowledged data
// stays with the clients, which send it again), the receiver drains what it read, and the
// program exits once its consumer has been idle for 300 ms.
//
// With -shared-key-file the proxy first does the server side of the forward protocol's
// shared-key handshake (HELO, check PING, PONG with its own digest), as Fluentd's in_forward
// does with <security>, and passes on only connections that pass it; the receiver itself
// does not implement the handshake.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/fluentforwardreceiver"
	"github.com/tinylib/msgp/msgp"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

type line struct {
	Tag    string         `json:"tag"`
	TimeNS int64          `json:"time_ns"`
	Record map[string]any `json:"record"`
	LogB64 string         `json:"log_b64"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:24224", "TCP address to listen on")
	out := flag.String("out", "", "file to append records to (default stdout)")
	keyFile := flag.String("shared-key-file", "", "require the shared-key handshake with the key in this file")
	flag.Parse()
	key := ""
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fluentd-receiver:", err)
			os.Exit(1)
		}
		key = strings.TrimRight(string(b), "\r\n")
	}
	if err := run(*listen, *out, key); err != nil {
		fmt.Fprintln(os.Stderr, "fluentd-receiver:", err)
		os.Exit(1)
	}
}

func run(listen, outPath, sharedKey string) error {
	var w io.Writer = os.Stdout
	if outPath != "" {
		f, err := os.OpenFile(outPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var mu sync.Mutex
	var lastConsume atomic.Int64
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	sink, _ := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		mu.Lock()
		defer mu.Unlock()
		defer lastConsume.Store(time.Now().UnixNano())
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					rec := lr.Attributes().AsRaw()
					tag, _ := rec["fluent.tag"].(string)
					delete(rec, "fluent.tag")
					body := lr.Body().AsString()
					rec["log"] = body
					_ = enc.Encode(line{Tag: tag, TimeNS: lr.Timestamp().AsTime().UnixNano(), Record: rec,
						LogB64: base64.StdEncoding.EncodeToString([]byte(body))})
				}
			}
		}
		return bw.Flush()
	})

	dir, err := os.MkdirTemp("", "fluentd-receiver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "forward.sock")
	f := fluentforwardreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*fluentforwardreceiver.Config)
	cfg.ListenAddress = "unix://" + sock
	ctx := context.Background()
	rcv, err := f.CreateLogs(ctx, receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		return err
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	p := &proxy{conns: map[net.Conn]bool{}, sharedKey: sharedKey}
	go p.serve(l, sock)
	fmt.Fprintf(os.Stderr, "fluentd-receiver: listening on %s\n", l.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	l.Close()
	p.closeAll()
	lastConsume.Store(time.Now().UnixNano())
	for time.Since(time.Unix(0, lastConsume.Load())) < 300*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	_ = rcv.Shutdown(ctx)
	mu.Lock()
	defer mu.Unlock()
	return bw.Flush()
}

// proxy forwards each TCP client to the receiver's unix socket.
type proxy struct {
	mu        sync.Mutex
	conns     map[net.Conn]bool
	closed    bool
	sharedKey string // "": no handshake
}

func (p *proxy) serve(l net.Listener, sock string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("unix", sock)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns[c] = true
		p.mu.Unlock()
		go func() {
			var r io.Reader = c
			if p.sharedKey != "" {
				var err error
				if r, err = handshake(c, p.sharedKey); err != nil {
					fmt.Fprintln(os.Stderr, "fluentd-receiver: handshake:", err)
					c.Close()
					u.Close()
					return
				}
			}
			// Everything read from the client is written before the next read, so when the
			// client side closes, the receiver has all of it; it then reads to EOF.
			_, _ = io.Copy(u, r)
			_ = u.(*net.UnixConn).CloseWrite()
		}()
		go func() { _, _ = io.Copy(c, u); c.Close(); u.Close() }()
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
}

// handshake does the server side of the shared-key handshake on c; it returns the reader
// to go on with (it may hold bytes read past the PING).
func handshake(c net.Conn, key string) (io.Reader, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	helo := msgp.AppendArrayHeader(nil, 2)
	helo = msgp.AppendString(helo, "HELO")
	helo = msgp.AppendMapHeader(helo, 3)
	helo = msgp.AppendBytes(msgp.AppendString(helo, "nonce"), nonce)
	helo = msgp.AppendString(msgp.AppendString(helo, "auth"), "")
	helo = msgp.AppendBool(msgp.AppendString(helo, "keepalive"), true)
	if _, err := c.Write(helo); err != nil {
		return nil, err
	}
	r := msgp.NewReader(c)
	if n, err := r.ReadArrayHeader(); err != nil || n != 6 {
		return nil, fmt.Errorf("want PING, a 6-element array (%v)", err)
	}
	var ping [6]string
	for i := range ping {
		var err error
		if ping[i], err = r.ReadString(); err != nil {
			return nil, fmt.Errorf("PING field %d: %w", i, err)
		}
	}
	digest := func(salt, host string) string {
		h := sha512.New()
		h.Write([]byte(salt + host))
		h.Write(nonce)
		h.Write([]byte(key))
		return hex.EncodeToString(h.Sum(nil))
	}
	pong := msgp.AppendString(msgp.AppendArrayHeader(nil, 5), "PONG")
	ok := ping[0] == "PING" && ping[3] == digest(ping[2], ping[1])
	if ok {
		pong = msgp.AppendString(msgp.AppendString(msgp.AppendBool(pong, true), ""), "fluentd-receiver")
		pong = msgp.AppendString(pong, digest(ping[2], "fluentd-receiver"))
	} else {
		pong = msgp.AppendString(msgp.AppendString(msgp.AppendString(msgp.AppendBool(pong, false), "shared_key mismatch"), ""), "")
	}
	if _, err := c.Write(pong); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("shared_key mismatch from %q", ping[1])
	}
	return r, nil
}
