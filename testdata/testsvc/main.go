// Command testsvc is the service that Lookout's end-to-end tests run in containers.
// It is built statically and packed FROM scratch, so it is its own health check and
// its own control tool:
//
//	testsvc serve              run the service (the image's entrypoint)
//	testsvc health             the HEALTHCHECK: exit 0 when healthy, 1 otherwise
//	testsvc set healthy|unhealthy
//	testsvc die CODE           make the service exit with CODE
//	testsvc http MODE          how GET /health answers: ok, 500, slow, hang, wrongbody,
//	                           endless-body (200, then a body without end), endless-headers
//	                           (a status line, then header lines without end)
//	testsvc exit CODE          exit at once with CODE (an exec check's command)
//	testsvc sleep DURATION     sleep, then exit 0 (an exec check that times out)
//	testsvc spew BYTES         write BYTES bytes to stdout, then exit 1
//	testsvc mark NAME          record that NAME happened (an exec check's command), exit 0
//	testsvc span URL           POST one OTLP/JSON trace (service "testsvc", one span) to
//	                           URL; exit 0 when it was answered 200
//
// It listens on :8080 (HTTP; GET /redirect?to=URL answers 302 to URL whatever the mode;
// POST /set?health=STATE and POST /span?url=URL do what set and span do, without an exec)
// and :9000 (TCP: answers "PONG\n" to "PING\n"). Two settings of serve, for the churn
// test (e2e/churn):
//
//	TESTSVC_LOG_BURST=N        write N numbered lines to stdout at start
//	TESTSVC_HEALTHY_AFTER=a,b  the health check fails until each of a, b, … happened:
//	                           "http" is a request to :8080, any other name a `mark`
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const stateDir = "/run/testsvc"

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "serve":
		serve()
	case "health":
		for _, w := range strings.Split(os.Getenv("TESTSVC_HEALTHY_AFTER"), ",") {
			if _, err := os.Stat(filepath.Join(stateDir, "mark-"+w)); w != "" && err != nil {
				fmt.Printf("check failed: waiting for %s\n", w)
				os.Exit(1)
			}
		}
		b, err := os.ReadFile(filepath.Join(stateDir, "health"))
		state := strings.TrimSpace(string(b))
		if err != nil || state == "healthy" {
			fmt.Println("ok")
			os.Exit(0)
		}
		fmt.Printf("check failed: state is %q\n", state)
		os.Exit(1)
	case "set":
		if len(os.Args) != 3 {
			fail("usage: testsvc set healthy|unhealthy")
		}
		write("health", os.Args[2])
	case "http":
		if len(os.Args) != 3 {
			fail("usage: testsvc http ok|500|slow|hang|wrongbody|endless-body|endless-headers")
		}
		write("http", os.Args[2])
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Println("exiting with", code)
		os.Exit(code)
	case "sleep":
		d, _ := time.ParseDuration(os.Args[2])
		time.Sleep(d)
	case "spew":
		n, _ := strconv.Atoi(os.Args[2])
		os.Stdout.Write([]byte(strings.Repeat("x", n)))
		os.Exit(1)
	case "mark":
		if len(os.Args) != 3 || strings.ContainsAny(os.Args[2], "/.") {
			fail("usage: testsvc mark NAME")
		}
		write("mark-"+os.Args[2], "")
	case "span":
		if len(os.Args) != 3 {
			fail("usage: testsvc span URL")
		}
		if err := sendSpan(os.Args[2]); err != nil {
			fail(err.Error())
		}
	case "die":
		if len(os.Args) != 3 {
			fail("usage: testsvc die CODE")
		}
		write("exit", os.Args[2])
		if err := syscall.Kill(1, syscall.SIGUSR1); err != nil {
			fail(err.Error())
		}
	default:
		fail("unknown command " + cmd)
	}
}

func serve() {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		fail(err.Error())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	go func() {
		_ = http.ListenAndServe(":8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := os.Stat(filepath.Join(stateDir, "mark-http")); err != nil {
				write("mark-http", "")
			}
			if r.URL.Path == "/redirect" {
				http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
				return
			}
			if r.Method == http.MethodPost && (r.URL.Path == "/set" || r.URL.Path == "/span") {
				control(w, r)
				return
			}
			b, _ := os.ReadFile(filepath.Join(stateDir, "http"))
			switch strings.TrimSpace(string(b)) {
			case "500":
				http.Error(w, "internal trouble", http.StatusInternalServerError)
				return
			case "slow":
				time.Sleep(2 * time.Second)
			case "hang":
				<-r.Context().Done()
				return
			case "wrongbody":
				fmt.Fprintln(w, "degraded")
				return
			case "endless-body":
				endless(w, r, nil)
				return
			case "endless-headers":
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				buf.WriteString("HTTP/1.1 200 OK\r\n")
				endless(buf, r, buf.Flush)
				return
			}
			fmt.Fprintln(w, "ok")
		}))
	}()
	go tcpServer()
	fmt.Println("testsvc serving")
	burst, _ := strconv.Atoi(os.Getenv("TESTSVC_LOG_BURST"))
	for i := 1; i <= burst; i++ {
		fmt.Printf("burst %d of %d\n", i, burst)
	}
	s := <-sig
	if s == syscall.SIGUSR1 {
		b, _ := os.ReadFile(filepath.Join(stateDir, "exit"))
		code, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			code = 99
		}
		os.Exit(code)
	}
	os.Exit(0)
}

// endless writes to w until the client goes: 200-byte lines, header-shaped so that the
// same writer serves an endless body and endless headers.
func endless(w io.Writer, r *http.Request, flush func() error) {
	line := []byte("X-Pad: " + strings.Repeat("p", 191) + "\r\n")
	for r.Context().Err() == nil {
		for range 100 {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
		if flush != nil && flush() != nil {
			return
		}
	}
}

// control does what `testsvc set` and `testsvc span` do, for a test that would rather
// not pay for a docker exec: POST /set?health=healthy|unhealthy, POST /span?url=URL.
func control(w http.ResponseWriter, r *http.Request) {
	var err error
	switch q := r.URL.Query(); r.URL.Path {
	case "/set":
		if h := q.Get("health"); h != "healthy" && h != "unhealthy" {
			err = fmt.Errorf("health %q: want healthy or unhealthy", h)
		} else {
			err = os.WriteFile(filepath.Join(stateDir, "health"), []byte(h), 0o644)
		}
	case "/span":
		err = sendSpan(q.Get("url"))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintln(w, "done")
}

// sendSpan posts one trace of one span in OTLP/JSON to url, on a connection of its own.
func sendSpan(url string) error {
	id := make([]byte, 24)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"testsvc"}}]},`+
		`"scopeSpans":[{"spans":[{"traceId":"%x","spanId":"%x","name":"churn","kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`,
		id[:16], id[16:], now-int64(time.Millisecond), now)
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, b)
	}
	return nil
}

func tcpServer() {
	l, err := net.Listen("tcp", ":9000")
	if err != nil {
		return
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 256)
			n, _ := c.Read(buf)
			if strings.TrimSpace(string(buf[:n])) == "PING" {
				fmt.Fprint(c, "PONG\n")
			} else {
				fmt.Fprint(c, "WHAT\n")
			}
		}()
	}
}

func write(name, value string) {
	if err := os.WriteFile(filepath.Join(stateDir, name), []byte(value), 0o644); err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}
