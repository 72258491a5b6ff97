package checks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// pipeDocker answers each exec start on an in-memory connection with answer, and keeps the
// request it read.
type pipeDocker struct {
	stuckDocker
	answer string
	got    chan *http.Request
}

func (d *pipeDocker) Dialer() func(context.Context) (net.Conn, error) {
	return func(context.Context) (net.Conn, error) {
		c, s := net.Pipe()
		go func() {
			defer s.Close()
			req, err := http.ReadRequest(bufio.NewReader(s))
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(strings.NewReader(string(body)))
			d.got <- req
			_, _ = io.WriteString(s, d.answer)
		}()
		return c, nil
	}
}

// startExec asks for no upgrade and reads the output as the body of a 200 that ends when
// the connection does; a refusal names the status and the message, of Docker's JSON or the
// first line of a proxy's page.
func TestStartExecPlainPOSTAndRefusals(t *testing.T) {
	frame := "\x01\x00\x00\x00\x00\x00\x00\x03ok\n"
	answer := func(status, ctype, body string) string {
		return fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", status, ctype, len(body), body)
	}
	for _, c := range []struct{ name, answer, want, err string }{
		{"stream", "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n" + frame, frame, ""},
		{"json", answer("403 Forbidden", "application/json",
			`{"message":"the socket proxy refuses POST \/v1.41\/exec\/e\/start"}`), "",
			"the Docker API answered 403 Forbidden: the socket proxy refuses POST /v1.41/exec/e/start"},
		{"html", answer("403 Forbidden", "text/html",
			"<html><body><h1>403 Forbidden</h1>\nRequest forbidden</html>"), "",
			"the Docker API answered 403 Forbidden: <html><body><h1>403 Forbidden</h1>"},
		{"empty", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "", "the Docker API answered 404 Not Found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &pipeDocker{answer: c.answer, got: make(chan *http.Request, 1)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rc, err := startExec(ctx, d, "e")
			req := <-d.got
			if req.Method != "POST" || req.URL.Path != "/v1.41/exec/e/start" || req.Header.Get("Upgrade") != "" {
				t.Errorf("request %s %s Upgrade=%q", req.Method, req.URL.Path, req.Header.Get("Upgrade"))
			}
			if b, _ := io.ReadAll(req.Body); string(b) != `{"Detach":false,"Tty":false}` {
				t.Errorf("body %q", b)
			}
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if b, _ := io.ReadAll(rc); string(b) != c.want {
				t.Errorf("stream %q, want %q", b, c.want)
			}
		})
	}
}
