package testpeer

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// socketListener finds the engine's dockerd and containerd for the resource and log
// benches; here it finds this test process by a socket it listens on.
func TestSocketListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "engine.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A connection to it shows the same path in /proc/net/unix, unlistened: not a match.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	comm, _ := os.ReadFile("/proc/self/comm")
	me := strings.TrimSpace(string(comm))
	if pid, err := socketListener(path, me); err != nil || pid != os.Getpid() {
		t.Fatalf("socketListener(%s, %s) = %d, %v; want %d", path, me, pid, err, os.Getpid())
	}
	// Through a symbolic link to its directory, as /var/run is to /run.
	link := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if pid, err := socketListener(filepath.Join(link, "engine.sock"), me); err != nil || pid != os.Getpid() {
		t.Fatalf("through a symlink: %d, %v; want %d", pid, err, os.Getpid())
	}
	// Held by no process of that name, or by none at all: an error naming the path.
	if _, err := socketListener(path, "dockerd"); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("another name: %v", err)
	}
	if _, err := socketListener(filepath.Join(dir, "none.sock"), me); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("no socket: %v", err)
	}
	if p := ParentPid(os.Getpid()); p != os.Getppid() {
		t.Fatalf("ParentPid = %d, want %d", p, os.Getppid())
	}
}
