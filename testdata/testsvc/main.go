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
//
// It listens on :8080 (HTTP; GET /redirect?to=URL answers 302 to URL whatever the mode)
// and :9000 (TCP: answers "PONG\n" to "PING\n").
package main

import (
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
			if r.URL.Path == "/redirect" {
				http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
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
