package resources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
)

// Cgroup reads a container's resource use from the host's cgroup files and from
// /proc/<pid>/net/dev of its main process, the same files the Docker daemon asks
// containerd to read for its stats API, without any call to the daemon. It fills a
// container.StatsResponse as Docker would, for cgroup v1 and v2, so both sources share
// one conversion to points.
//
// It needs the host's /proc (the agent in the host's PID namespace) and its cgroup tree.
type Cgroup struct {
	proc, root string // "/proc", "/sys/fs/cgroup"; tests point them at testdata
	v2         bool
	machineMem uint64 // Docker caps the memory limit at the machine's memory
	ticks      uint64 // USER_HZ, 100 on Linux

	mu      sync.Mutex
	dirs    map[string]string // container ID + "/" + controller -> cgroup directory
	sysAt   time.Time         // /proc/stat is read at most every sysTTL, not per container
	sysCPU  uint64
	sysCPUs uint32
	absent  map[string]bool // optional files this kernel does not have (CFQ's blkio files)
	perCPU  bool
	files   openFiles // the cgroup files of the containers read, kept open
}

// sysTTL is how long one reading of the host's CPU time serves: one gather reads it once.
const sysTTL = 500 * time.Millisecond

// NewCgroup returns a reader of the files under proc and root (normally "/proc" and
// "/sys/fs/cgroup"); perCPU reads the per-CPU usage too (cgroup v1 only). It fails if
// neither cgroup layout is found there.
func NewCgroup(proc, root string, perCPU bool) (*Cgroup, error) {
	c := &Cgroup{proc: proc, root: root, ticks: 100, dirs: map[string]string{}, absent: map[string]bool{}, perCPU: perCPU}
	c.files.max = keepLimit()
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		c.v2 = true
	} else if _, err := os.Stat(filepath.Join(root, "memory")); err != nil {
		return nil, fmt.Errorf("no cgroup v1 or v2 hierarchy under %s", root)
	}
	mem, err := machineMemory(filepath.Join(proc, "meminfo"))
	if err != nil {
		return nil, err
	}
	c.machineMem = mem
	return c, nil
}

// FilesOpen is the number of cgroup files kept open.
func (c *Cgroup) FilesOpen() int { return c.files.count() }

// Name implements Reader.
func (c *Cgroup) Name() string { return SourceCgroup }

// Read implements Reader.
func (c *Cgroup) Read(_ context.Context, t Target) (*container.StatsResponse, error) {
	if t.Pid <= 0 {
		return nil, fmt.Errorf("container %s has no process", short(t.ID))
	}
	s := &container.StatsResponse{ID: t.ID, Name: "/" + t.Name, Read: time.Now()}
	// The network file first: the cheapest read that can fail (the process just ended, or
	// the host's /proc is not visible), before the cgroup files. A host-network container
	// sees the host's interfaces, every other container's traffic included: like Docker's
	// stats API, report no networks for it.
	if t.NetworkMode != "host" {
		nets, err := netDev(filepath.Join(c.proc, strconv.Itoa(t.Pid), "net", "dev"))
		if err != nil {
			return nil, err
		}
		s.Networks = nets
	}
	sys, cpus, err := c.systemCPU(s.Read)
	if err != nil {
		return nil, err
	}
	s.CPUStats.SystemUsage, s.CPUStats.OnlineCPUs = sys, cpus
	if c.v2 {
		err = c.readV2(s, t)
	} else {
		err = c.readV1(s, t)
	}
	if err != nil {
		c.forget(t.ID) // the container may have moved or gone: look again next time
		return nil, err
	}
	return s, nil
}

func (c *Cgroup) systemCPU(now time.Time) (uint64, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.sysAt) < sysTTL && now.After(c.sysAt) {
		return c.sysCPU, c.sysCPUs, nil
	}
	sys, cpus, err := systemCPU(filepath.Join(c.proc, "stat"), c.ticks)
	if err != nil {
		return 0, 0, err
	}
	c.sysAt, c.sysCPU, c.sysCPUs = now, sys, cpus
	return sys, cpus, nil
}

// forget drops what is remembered of a container (its cgroup directories).
func (c *Cgroup) forget(id string) { c.Forget(func(k string) bool { return k != id }) }

// Forget implements the collector's forgetting of containers that stopped running.
func (c *Cgroup) Forget(keep func(id string) bool) {
	c.files.close(keep)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.dirs {
		id, _, _ := strings.Cut(k, "/")
		if !keep(id) {
			delete(c.dirs, k)
		}
	}
}

// dir finds the container's cgroup directory for a v1 controller ("" on v2), remembered
// per container: the path its main process reports in /proc/<pid>/cgroup, else the
// cgroupfs and systemd drivers' default paths.
func (c *Cgroup) dir(t Target, controller string) (string, error) {
	key := t.ID + "/" + controller
	c.mu.Lock()
	d, ok := c.dirs[key]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := c.findDir(t, controller)
	if err == nil {
		c.mu.Lock()
		c.dirs[key] = d
		c.mu.Unlock()
	}
	return d, err
}

func (c *Cgroup) findDir(t Target, controller string) (string, error) {
	base := filepath.Join(c.root, controller)
	var candidates []string
	if b, err := readFile(filepath.Join(c.proc, strconv.Itoa(t.Pid), "cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || parts[2] == "/" { // "/": a private cgroup namespace hides the path
				continue
			}
			if (controller == "" && parts[0] == "0" && parts[1] == "") ||
				(controller != "" && hasController(parts[1], controller)) {
				candidates = append(candidates, filepath.Join(base, parts[2]))
			}
		}
	}
	candidates = append(candidates, filepath.Join(base, "docker", t.ID),
		filepath.Join(base, "system.slice", "docker-"+t.ID+".scope"))
	for _, d := range candidates {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("no cgroup directory for container %s under %s", short(t.ID), base)
}

func hasController(list, want string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == want {
			return true
		}
	}
	return false
}

func (c *Cgroup) readV1(s *container.StatsResponse, t Target) error {
	cpuacct, err := c.dir(t, "cpuacct")
	if err != nil {
		return err
	}
	u := &s.CPUStats.CPUUsage
	if u.TotalUsage, err = c.readUint(t.ID, filepath.Join(cpuacct, "cpuacct.usage")); err != nil {
		return err
	}
	if c.perCPU {
		if b, err := c.files.read(t.ID, filepath.Join(cpuacct, "cpuacct.usage_percpu")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				v, _ := strconv.ParseUint(f, 10, 64)
				u.PercpuUsage = append(u.PercpuUsage, v)
			}
		}
	}
	if kv, err := c.readKV(t.ID, filepath.Join(cpuacct, "cpuacct.stat")); err == nil {
		u.UsageInUsermode = kv["user"] * uint64(time.Second) / c.ticks
		u.UsageInKernelmode = kv["system"] * uint64(time.Second) / c.ticks
	}
	if cpu, err := c.dir(t, "cpu"); err == nil {
		if kv, err := c.readKV(t.ID, filepath.Join(cpu, "cpu.stat")); err == nil {
			s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: kv["nr_periods"],
				ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
		}
	}

	mem, err := c.dir(t, "memory")
	if err != nil {
		return err
	}
	m := &s.MemoryStats
	if m.Usage, err = c.readUint(t.ID, filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return err
	}
	m.MaxUsage, _ = c.readUint(t.ID, filepath.Join(mem, "memory.max_usage_in_bytes"))
	m.Failcnt, _ = c.readUint(t.ID, filepath.Join(mem, "memory.failcnt"))
	limit, _ := c.readUint(t.ID, filepath.Join(mem, "memory.limit_in_bytes"))
	m.Limit = min(limit, c.machineMem)
	if m.Stats, err = c.readKV(t.ID, filepath.Join(mem, "memory.stat")); err != nil {
		return err
	}

	if pids, err := c.dir(t, "pids"); err == nil {
		s.PidsStats.Current, _ = c.readUint(t.ID, filepath.Join(pids, "pids.current"))
		s.PidsStats.Limit, _ = c.readUint(t.ID, filepath.Join(pids, "pids.max")) // "max" reads as 0: no limit
	}

	if blkio, err := c.dir(t, "blkio"); err == nil {
		b := &s.BlkioStats
		b.IoServiceBytesRecursive = c.readBlkioV1(t.ID, blkio, "io_service_bytes_recursive")
		b.IoServicedRecursive = c.readBlkioV1(t.ID, blkio, "io_serviced_recursive")
		b.IoQueuedRecursive = c.readBlkioV1(t.ID, blkio, "io_queued_recursive")
		b.IoServiceTimeRecursive = c.readBlkioV1(t.ID, blkio, "io_service_time_recursive")
		b.IoWaitTimeRecursive = c.readBlkioV1(t.ID, blkio, "io_wait_time_recursive")
		b.IoMergedRecursive = c.readBlkioV1(t.ID, blkio, "io_merged_recursive")
		b.IoTimeRecursive = c.readBlkioV1(t.ID, blkio, "time_recursive")
		b.SectorsRecursive = c.readBlkioV1(t.ID, blkio, "sectors_recursive")
	}
	return nil
}

// readBlkioV1 reads blkio.<name>, falling back to blkio.throttle.<name> as containerd
// does when the CFQ files are absent or empty (every kernel without CFQ). A file missing
// from an existing directory is missing from every cgroup: it is not tried again.
func (c *Cgroup) readBlkioV1(id, dir, name string) []container.BlkioStatEntry {
	for _, f := range []string{"blkio." + name, "blkio.throttle." + name} {
		c.mu.Lock()
		skip := c.absent[f]
		c.mu.Unlock()
		if skip {
			continue
		}
		b, err := c.files.read(id, filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				c.mu.Lock()
				c.absent[f] = true
				c.mu.Unlock()
			}
		}
		if err != nil {
			continue
		}
		if e := parseBlkioV1(b); len(e) > 0 {
			return e
		}
	}
	return nil
}

// parseBlkioV1 parses "8:0 Read 4096" and "8:0 4096" lines; the "Total N" line is skipped.
func parseBlkioV1(b []byte) []container.BlkioStatEntry {
	var out []container.BlkioStatEntry
	deviceLines(b, func(maj, minr uint64, rest []string) {
		e := container.BlkioStatEntry{Major: maj, Minor: minr}
		val := rest[0]
		if len(rest) == 2 {
			e.Op, val = rest[0], rest[1]
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return
		}
		e.Value = v
		out = append(out, e)
	})
	return out
}

// deviceLines calls fn with the device and the other fields of each "MAJ:MIN field…"
// line of a blkio or io.stat file; other lines are skipped.
func deviceLines(b []byte, fn func(maj, minr uint64, rest []string)) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if maj, minr, ok := parseDevice(f[0]); ok {
			fn(maj, minr, f[1:])
		}
	}
}

func parseDevice(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	minr, err2 := strconv.ParseUint(b, 10, 64)
	return maj, minr, err1 == nil && err2 == nil
}

func (c *Cgroup) readV2(s *container.StatsResponse, t Target) error {
	dir, err := c.dir(t, "")
	if err != nil {
		return err
	}
	kv, err := c.readKV(t.ID, filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	u := &s.CPUStats.CPUUsage
	u.TotalUsage = kv["usage_usec"] * 1000
	u.UsageInUsermode = kv["user_usec"] * 1000
	u.UsageInKernelmode = kv["system_usec"] * 1000
	s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: kv["nr_periods"],
		ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * 1000}

	m := &s.MemoryStats
	if m.Usage, err = c.readUint(t.ID, filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	limit, err := c.readUint(t.ID, filepath.Join(dir, "memory.max"))
	if err != nil || limit == 0 {
		limit = c.machineMem // "max": no limit
	}
	m.Limit = min(limit, c.machineMem)
	if m.Stats, err = c.readKV(t.ID, filepath.Join(dir, "memory.stat")); err != nil {
		return err
	}
	s.PidsStats.Current, _ = c.readUint(t.ID, filepath.Join(dir, "pids.current"))
	s.PidsStats.Limit, _ = c.readUint(t.ID, filepath.Join(dir, "pids.max"))
	if b, err := c.files.read(t.ID, filepath.Join(dir, "io.stat")); err == nil {
		s.BlkioStats.IoServiceBytesRecursive, s.BlkioStats.IoServicedRecursive = parseIOStatV2(b)
	}
	return nil
}

// parseIOStatV2 parses io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0") into
// Docker's entries: bytes and operations, op "read" and "write".
func parseIOStatV2(b []byte) (bytesEntries, ios []container.BlkioStatEntry) {
	deviceLines(b, func(maj, minr uint64, rest []string) {
		kv := map[string]uint64{}
		for _, p := range rest {
			k, v, _ := strings.Cut(p, "=")
			kv[k], _ = strconv.ParseUint(v, 10, 64)
		}
		bytesEntries = append(bytesEntries,
			container.BlkioStatEntry{Major: maj, Minor: minr, Op: "read", Value: kv["rbytes"]},
			container.BlkioStatEntry{Major: maj, Minor: minr, Op: "write", Value: kv["wbytes"]})
		ios = append(ios,
			container.BlkioStatEntry{Major: maj, Minor: minr, Op: "read", Value: kv["rios"]},
			container.BlkioStatEntry{Major: maj, Minor: minr, Op: "write", Value: kv["wios"]})
	})
	return bytesEntries, ios
}

// systemCPU returns the host's CPU time in nanoseconds (the first seven fields of the
// "cpu" line of /proc/stat, as Docker counts it) and the number of CPUs.
func systemCPU(path string, ticks uint64) (uint64, uint32, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, 0, err
	}
	var total uint64
	var cpus uint32
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cpus++
			continue
		}
		if len(f) < 8 {
			return 0, 0, fmt.Errorf("%s: cpu line has %d fields, want 8 or more", path, len(f))
		}
		for _, v := range f[1:8] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: cpu line: %w", path, err)
			}
			total += n
		}
		found = true
	}
	if !found {
		return 0, 0, fmt.Errorf("%s: no cpu line", path)
	}
	return total * uint64(time.Second) / ticks, cpus, nil
}

// netDev parses /proc/<pid>/net/dev: the interfaces of the container's network namespace,
// loopback left out as Docker leaves it out.
func netDev(path string) (map[string]container.NetworkStats, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]container.NetworkStats{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 16 {
			continue
		}
		n := make([]uint64, 16)
		for i := range n {
			n[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out[name] = container.NetworkStats{RxBytes: n[0], RxPackets: n[1], RxErrors: n[2], RxDropped: n[3],
			TxBytes: n[8], TxPackets: n[9], TxErrors: n[10], TxDropped: n[11]}
	}
	return out, nil
}

func machineMemory(path string) (uint64, error) {
	kv, err := readKV(path)
	if err != nil {
		return 0, err
	}
	if kv["MemTotal:"] == 0 {
		return 0, fmt.Errorf("%s: no MemTotal", path)
	}
	return kv["MemTotal:"] * 1024, nil
}

// readKV reads "key value" lines (memory.stat, cpu.stat, cpuacct.stat) of a cgroup file
// of container id.
func (c *Cgroup) readKV(id, path string) (map[string]uint64, error) {
	b, err := c.files.read(id, path)
	if err != nil {
		return nil, err
	}
	return parseKV(b), nil
}

// readKV reads "key value" lines (meminfo).
func readKV(path string) (map[string]uint64, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseKV(b), nil
}

func parseKV(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// readUint reads a cgroup file of container id holding one number; "max" (no limit)
// reads as 0.
func (c *Cgroup) readUint(id, path string) (uint64, error) {
	b, err := c.files.read(id, path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, s)
	}
	return v, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
