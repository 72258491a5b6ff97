package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		self  string            // /proc/self/cgroup
		files map[string]string // under the cgroup root
		want  int64
	}{
		{"v2 in a container (cgroup namespace: the root is its own)", "0::/\n",
			map[string]string{"memory.max": "134217728\n"}, 128 << 20},
		{"v2 on a host, the process's cgroup limited", "0::/system.slice/lookout.service\n",
			map[string]string{"system.slice/lookout.service/memory.max": "268435456\n", "memory.max": "max\n"}, 256 << 20},
		{"v2 without a limit", "0::/user.slice\n", map[string]string{"user.slice/memory.max": "max\n"}, 0},
		{"v1 in a container (Docker mounts its own cgroup at the root)", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
			map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, 128 << 20},
		{"v1 on a host, no limit", "12:cpuset:/\n11:memory:/user.slice\n",
			map[string]string{"memory/user.slice/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"v1 controllers listed together", "5:blkio,memory:/x\n",
			map[string]string{"memory/x/memory.limit_in_bytes": "1048576\n"}, 1 << 20},
		{"no memory controller", "3:cpu:/\n", nil, 0},
		{"garbage", "memory.max\n::\n0::/\n", map[string]string{"memory.max": "lots\n"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for p, v := range tt.files {
				full := filepath.Join(dir, "cg", p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			self := filepath.Join(dir, "self")
			if err := os.WriteFile(self, []byte(tt.self), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := cgroupMemoryLimit(filepath.Join(dir, "cg"), self); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "memory.max"), []byte("134217728\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "self"), []byte("0::/\n"), 0o644)
	t.Setenv("GOMEMLIMIT", "")
	if got := setMemoryLimit(dir, filepath.Join(dir, "self")); got != 96<<20 || debug.SetMemoryLimit(-1) != 96<<20 {
		t.Errorf("soft limit %d (runtime %d), want 3/4 of the cgroup's 128 MiB: %d", got, debug.SetMemoryLimit(-1), 96<<20)
	}
	// GOMEMLIMIT wins (the runtime read it at start; here it is set by hand as it would be).
	debug.SetMemoryLimit(50 << 20)
	t.Setenv("GOMEMLIMIT", "50MiB")
	if got := setMemoryLimit(dir, filepath.Join(dir, "self")); got != 50<<20 {
		t.Errorf("with GOMEMLIMIT set: %d, want the runtime's 50 MiB", got)
	}
}
