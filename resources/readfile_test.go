package resources

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestOpenFilesKeepsAndReopens(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "memory.usage_in_bytes")
	write := func(s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var o openFiles
	read := func(want string) {
		t.Helper()
		b, err := o.read("c1", p)
		if err != nil || string(b) != want {
			t.Fatalf("read %q, %v; want %q", b, err, want)
		}
	}
	write("1\n")
	read("1\n")
	if o.count() != 1 {
		t.Fatalf("%d files open, want 1", o.count())
	}
	write("22\n") // the same file, new content: read from the start again
	read("22\n")
	// The file is removed and another takes its path (a cgroup re-created): opened again.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	write("333\n")
	read("333\n")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := o.read("c1", p); err == nil {
		t.Fatal("read a removed file")
	}
	if o.count() != 0 {
		t.Errorf("%d files open after the file went, want 0", o.count())
	}
	// A file larger than the first buffer, read whole, twice.
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	write(string(big))
	read(string(big))
	read(string(big))
	o.close(func(string) bool { return true })
	if o.count() != 1 {
		t.Errorf("close kept %d files, want the 1 of the container kept", o.count())
	}
	o.close(func(string) bool { return false })
	if o.count() != 0 {
		t.Errorf("%d files open after close, want 0", o.count())
	}
}

// BenchmarkCgroupRead reads a running container's cgroups (LOOKOUT_BENCH_CONTAINER, its
// ID) with the files kept open between reads and, for comparison, opened again every time
// (as before they were kept):
//
//	LOOKOUT_BENCH_CONTAINER=$(docker run -d lookout-testsvc:e2e) go test -run - -bench CgroupRead ./resources
func BenchmarkCgroupRead(b *testing.B) {
	id := os.Getenv("LOOKOUT_BENCH_CONTAINER")
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if id == "" || err != nil || pid <= 0 {
		b.Skipf("set LOOKOUT_BENCH_CONTAINER to a running container's ID (docker inspect: %v)", err)
	}
	r, err := NewCgroup("/proc", "/sys/fs/cgroup", false)
	if err != nil {
		b.Fatal(err)
	}
	target := Target{ID: id, Name: "bench", Pid: pid}
	if _, err := r.Read(context.Background(), target); err != nil {
		b.Fatal(err)
	}
	b.Run("kept-open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Read(context.Background(), target); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reopened", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.files.close(func(string) bool { return false })
			if _, err := r.Read(context.Background(), target); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// At the limit, files are read without being kept: the agent's sockets keep their share
// of the process's open files.
func TestOpenFilesKeepsNoMoreThanTheLimit(t *testing.T) {
	dir := t.TempDir()
	o := openFiles{max: 2}
	for i := range 4 {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := o.read("c", p); err != nil || string(b) != strconv.Itoa(i) {
			t.Fatalf("read %d: %q, %v", i, b, err)
		}
	}
	if o.count() != 2 {
		t.Errorf("%d files kept, want the limit 2", o.count())
	}
	o.close(func(string) bool { return false })
	if o.count() != 0 {
		t.Errorf("%d files kept after close", o.count())
	}
	if keepLimit() < 1 {
		t.Errorf("keepLimit() = %d", keepLimit())
	}
}
