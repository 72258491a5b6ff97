// Command testsvc is the service that Lookout's end-to-end tests run in containers.
// It is built statically and packed FROM scratch, so it is its own health check and
// its own control tool:
//
//	testsvc serve              run the service (the image's entrypoint)
//	testsvc health             the HEALTHCHECK: exit 0 when healthy, 1 otherwise
//	testsvc set healthy|unhealthy
//	testsvc die CODE           make the service exit with CODE
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
			fmt.Fprintln(w, "ok")
		}))
	}()
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

func write(name, value string) {
	if err := os.WriteFile(filepath.Join(stateDir, name), []byte(value), 0o644); err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}
