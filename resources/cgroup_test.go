package resources

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
)

const testID = "a25d94ae97f15ec1ea801fc1c19ee5a2ede6127fca7c0b32324fcde7e176efda"

// writeTree writes files (path relative to dir -> content).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// procFiles are a host's /proc/stat, /proc/meminfo and the container's process (pid 42).
func procFiles(cgroup string) map[string]string {
	return map[string]string{
		"proc/stat":      "cpu  77309 0 40773 68965 568 0 550 0 0 0\ncpu0 38306 0 20066 35408 60 0 215 0 0 0\ncpu1 39003 0 20706 33557 507 0 334 0 0 0\nintr 1 2\n",
		"proc/meminfo":   "MemTotal:       24683620 kB\nMemFree:  100 kB\n",
		"proc/42/cgroup": cgroup,
		"proc/42/net/dev": `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1086      13    1    2    0     0          0         0      300       3    4    5    0     0       0          0
  eth1:      14       1    0    0    0     0          0         0        0       0    0    0    0     0       0          0
`,
	}
}

func TestCgroupV1(t *testing.T) {
	dir := t.TempDir()
	files := procFiles("4:memory:/docker/" + testID + "\n2:cpuacct:/docker/" + testID + "\n1:cpu:/docker/" + testID + "\n0::/docker/" + testID + "\n")
	cg := "sys/fs/cgroup/"
	for k, v := range map[string]string{
		"cpuacct/docker/" + testID + "/cpuacct.usage":                           "346144494\n",
		"cpuacct/docker/" + testID + "/cpuacct.usage_percpu":                    "200000000 146144494 \n",
		"cpuacct/docker/" + testID + "/cpuacct.stat":                            "user 19\nsystem 15\n",
		"cpu/docker/" + testID + "/cpu.stat":                                    "nr_periods 7\nnr_throttled 2\nthrottled_time 1000\n",
		"memory/docker/" + testID + "/memory.usage_in_bytes":                    "6828032\n",
		"memory/docker/" + testID + "/memory.max_usage_in_bytes":                "10080256\n",
		"memory/docker/" + testID + "/memory.failcnt":                           "3\n",
		"memory/docker/" + testID + "/memory.limit_in_bytes":                    "9223372036854771712\n",
		"memory/docker/" + testID + "/memory.stat":                              "cache 5160960\nrss 1060864\ntotal_inactive_file 1294336\n",
		"pids/docker/" + testID + "/pids.current":                               "7\n",
		"pids/docker/" + testID + "/pids.max":                                   "max\n",
		"blkio/docker/" + testID + "/blkio.io_serviced_recursive":               "Total 0\n",
		"blkio/docker/" + testID + "/blkio.throttle.io_serviced_recursive":      "8:0 Read 3\n8:0 Write 4\n8:0 Total 7\nTotal 7\n",
		"blkio/docker/" + testID + "/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
	} {
		files[cg+k] = v
	}
	writeTree(t, dir, files)
	r, err := NewCgroup(filepath.Join(dir, "proc"), filepath.Join(dir, "sys/fs/cgroup"), true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Read(context.Background(), Target{ID: testID, Name: "web", Pid: 42})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CPUStats.SystemUsage, uint64(188165)*10_000_000; got != want {
		t.Errorf("system usage %d, want %d", got, want)
	}
	want := container.CPUUsage{TotalUsage: 346144494, PercpuUsage: []uint64{200000000, 146144494},
		UsageInUsermode: 190_000_000, UsageInKernelmode: 150_000_000}
	if !reflect.DeepEqual(s.CPUStats.CPUUsage, want) || s.CPUStats.OnlineCPUs != 2 {
		t.Errorf("cpu %+v online %d, want %+v and 2", s.CPUStats.CPUUsage, s.CPUStats.OnlineCPUs, want)
	}
	if s.CPUStats.ThrottlingData != (container.ThrottlingData{Periods: 7, ThrottledPeriods: 2, ThrottledTime: 1000}) {
		t.Errorf("throttling %+v", s.CPUStats.ThrottlingData)
	}
	m := s.MemoryStats
	if m.Usage != 6828032 || m.MaxUsage != 10080256 || m.Failcnt != 3 || m.Limit != 24683620*1024 || m.Stats["cache"] != 5160960 {
		t.Errorf("memory %+v: want the limit capped at MemTotal", m)
	}
	if s.PidsStats.Current != 7 || s.PidsStats.Limit != 0 {
		t.Errorf("pids %+v", s.PidsStats)
	}
	wantIO := []container.BlkioStatEntry{{Major: 8, Minor: 0, Op: "Read", Value: 3}, {Major: 8, Op: "Write", Value: 4}, {Major: 8, Op: "Total", Value: 7}}
	if !reflect.DeepEqual(s.BlkioStats.IoServicedRecursive, wantIO) {
		t.Errorf("serviced %+v, want %+v (the throttle file when the CFQ one is empty)", s.BlkioStats.IoServicedRecursive, wantIO)
	}
	if len(s.BlkioStats.IoServiceBytesRecursive) != 3 {
		t.Errorf("service bytes %+v", s.BlkioStats.IoServiceBytesRecursive)
	}
	wantNet := map[string]container.NetworkStats{
		"eth0": {RxBytes: 1086, RxPackets: 13, RxErrors: 1, RxDropped: 2, TxBytes: 300, TxPackets: 3, TxErrors: 4, TxDropped: 5},
		"eth1": {RxBytes: 14, RxPackets: 1},
	}
	if !reflect.DeepEqual(s.Networks, wantNet) {
		t.Errorf("networks %+v, want %+v (no lo)", s.Networks, wantNet)
	}
	// A host-network container sees the host's interfaces: no networks, as Docker's API.
	if hs, err := r.Read(context.Background(), Target{ID: testID, Name: "web", Pid: 42, NetworkMode: "host"}); err != nil || hs.Networks != nil {
		t.Errorf("host network: networks %+v, err %v; want none", hs.Networks, err)
	}
}

func TestCgroupV2SystemdDriver(t *testing.T) {
	dir := t.TempDir()
	// The process reports no path (a private cgroup namespace): the systemd default is used.
	files := procFiles("0::/\n")
	scope := "sys/fs/cgroup/system.slice/docker-" + testID + ".scope/"
	for k, v := range map[string]string{
		"sys/fs/cgroup/cgroup.controllers": "cpu io memory pids\n",
		scope + "cpu.stat":                 "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 1\nnr_throttled 0\nthrottled_usec 0\n",
		scope + "memory.current":           "4096000\n",
		scope + "memory.max":               "1048576000\n",
		scope + "memory.stat":              "anon 100\nfile 200\ninactive_file 96000\nactive_anon 10\npgfault 9\n",
		scope + "pids.current":             "3\n",
		scope + "pids.max":                 "100\n",
		scope + "io.stat":                  "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
	} {
		files[k] = v
	}
	writeTree(t, dir, files)
	r, err := NewCgroup(filepath.Join(dir, "proc"), filepath.Join(dir, "sys/fs/cgroup"), true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Read(context.Background(), Target{ID: testID, Pid: 42})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.CPUStats.CPUUsage; u.TotalUsage != 5_000_000 || u.UsageInUsermode != 3_000_000 || u.UsageInKernelmode != 2_000_000 {
		t.Errorf("cpu %+v: want microseconds turned into nanoseconds", u)
	}
	if s.MemoryStats.Usage != 4096000 || s.MemoryStats.Limit != 1048576000 || s.MemoryStats.Stats["inactive_file"] != 96000 {
		t.Errorf("memory %+v", s.MemoryStats)
	}
	if s.PidsStats.Current != 3 || s.PidsStats.Limit != 100 {
		t.Errorf("pids %+v", s.PidsStats)
	}
	want := []container.BlkioStatEntry{{Major: 8, Op: "read", Value: 10}, {Major: 8, Op: "write", Value: 20}}
	if !reflect.DeepEqual(s.BlkioStats.IoServiceBytesRecursive, want) {
		t.Errorf("io %+v, want %+v", s.BlkioStats.IoServiceBytesRecursive, want)
	}
	if used := memUsageNoCache(s.MemoryStats); used != 4096000-96000 {
		t.Errorf("usage without cache %d", used)
	}
}

func TestCgroupErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewCgroup(filepath.Join(dir, "proc"), filepath.Join(dir, "nothing"), false); err == nil {
		t.Error("NewCgroup found a hierarchy in an empty directory")
	}
	files := procFiles("0::/\n")
	files["sys/fs/cgroup/cgroup.controllers"] = "cpu\n"
	writeTree(t, dir, files)
	r, err := NewCgroup(filepath.Join(dir, "proc"), filepath.Join(dir, "sys/fs/cgroup"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(context.Background(), Target{ID: testID, Pid: 42}); err == nil {
		t.Error("read a container whose cgroup does not exist")
	}
	if _, err := r.Read(context.Background(), Target{ID: testID}); err == nil {
		t.Error("read a container without a process")
	}
}

func TestCgroupForgetsAMovedContainer(t *testing.T) {
	dir := t.TempDir()
	files := procFiles("0::/\n")
	files["sys/fs/cgroup/cgroup.controllers"] = "cpu memory\n"
	v2 := func(base string) map[string]string {
		return map[string]string{base + "cpu.stat": "usage_usec 1\n", base + "memory.current": "1\n", base + "memory.stat": "anon 1\n"}
	}
	for k, v := range v2("sys/fs/cgroup/docker/" + testID + "/") {
		files[k] = v
	}
	writeTree(t, dir, files)
	r, err := NewCgroup(filepath.Join(dir, "proc"), filepath.Join(dir, "sys/fs/cgroup"), true)
	if err != nil {
		t.Fatal(err)
	}
	target := Target{ID: testID, Pid: 42}
	if _, err := r.Read(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	// The directory goes and another appears (the same ID under the systemd driver).
	if err := os.RemoveAll(filepath.Join(dir, "sys/fs/cgroup/docker")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, v2("sys/fs/cgroup/system.slice/docker-"+testID+".scope/"))
	if _, err := r.Read(context.Background(), target); err == nil {
		t.Fatal("read from a directory that is gone")
	}
	if _, err := r.Read(context.Background(), target); err != nil {
		t.Fatalf("after a failed read the directory is looked up again: %v", err)
	}
	r.Forget(func(string) bool { return false })
	if len(r.dirs) != 0 {
		t.Errorf("Forget kept %v", r.dirs)
	}
}
