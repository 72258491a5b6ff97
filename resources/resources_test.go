package resources

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/execd"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

type fakeInv []inventory.Container

func (f fakeInv) Snapshot() []inventory.Container { return append([]inventory.Container(nil), f...) }

func (f fakeInv) Engine() inventory.Engine {
	return inventory.Engine{Host: "node-1", ServerVersion: "20.10.24"}
}

// box is a mailbox holding the containers, as the inventory fills it.
func (f fakeInv) box() *inventory.Mailbox {
	mb := inventory.NewMailbox("resources", nil)
	for i := range f {
		mb.Put(inventory.Update{Container: &f[i], Engine: f.Engine(), Time: time.Now()})
	}
	return mb
}

type fakeInfo struct{ err error }

func (f fakeInfo) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{Name: "node-1", ServerVersion: "20.10.24", NCPU: 2, Containers: 3,
		ContainersRunning: 2, MemTotal: 1 << 30}}, f.err
}

// fakeReader returns a stats reading whose CPU grows by 1e8 ns per read, or fails for the
// IDs in fail.
type fakeReader struct {
	name string
	fail map[string]bool
	mu   sync.Mutex
	n    map[string]uint64
}

func (f *fakeReader) Name() string { return f.name }

func (f *fakeReader) Read(_ context.Context, t Target) (*container.StatsResponse, error) {
	if f.fail[t.ID] {
		return nil, errors.New("cannot read " + t.ID)
	}
	f.mu.Lock()
	if f.n == nil {
		f.n = map[string]uint64{}
	}
	f.n[t.ID]++
	n := f.n[t.ID]
	f.mu.Unlock()
	s := &container.StatsResponse{Read: time.Unix(100, 0)}
	s.CPUStats.CPUUsage.TotalUsage = n * 1e8
	s.CPUStats.CPUUsage.PercpuUsage = []uint64{n * 6e7, n * 4e7}
	s.CPUStats.SystemUsage = n * 1e9
	s.CPUStats.OnlineCPUs = 2
	s.MemoryStats = container.MemoryStats{Usage: 1000, Limit: 4000, MaxUsage: 2000,
		Stats: map[string]uint64{"cache": 200, "rss": 800, "total_rss": 800, "shmem": 1}}
	s.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 10, TxBytes: 1}, "eth1": {RxBytes: 5, TxBytes: 2}}
	s.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Major: 8, Op: "Read", Value: 7}, {Major: 8, Minor: 16, Op: "Read", Value: 3}}
	s.PidsStats = container.PidsStats{Current: 4, Limit: 100}
	return s, nil
}

func running(id, name string, monitored bool) inventory.Container {
	c := inventory.Container{ID: id, Name: name, ImageName: "img", ImageVersion: "1", Monitored: monitored,
		Config: labels.Config{Tags: map[string]string{"team": "a"}}}
	c.State.Running, c.State.Pid, c.State.Status = true, 42, "running"
	return c
}

type sink struct {
	mu     sync.Mutex
	points []metric.Point
}

func (s *sink) Add(p ...metric.Point) { s.mu.Lock(); s.points = append(s.points, p...); s.mu.Unlock() }

func byName(points []metric.Point, name string) []metric.Point {
	var out []metric.Point
	for _, p := range points {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func fieldKeys(p metric.Point) string {
	var k []string
	for _, f := range p.Fields {
		k = append(k, f.Key)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func TestCollectTelegrafNames(t *testing.T) {
	paused := running("p", "paused", true)
	paused.State.Paused = true
	inv := fakeInv{running("c1", "web", true), running("c2", "other", false), paused}
	c := New(nil, inv.box(), fakeInfo{}, Options{}, &fakeReader{name: "fake"})
	first := c.Collect(context.Background())
	second := c.Collect(context.Background())

	d := byName(second, MeasurementDocker)
	if len(d) != 1 || d[0].Tag("engine_host") != "node-1" || d[0].Field("n_containers") != int64(3) || d[0].Field("memory_total") != int64(1<<30) {
		t.Fatalf("docker point %+v", d)
	}
	cpu := byName(second, MeasurementCPU)
	if len(cpu) != 1 {
		t.Fatalf("cpu points %+v: want only the monitored running container, cpu-total only", cpu)
	}
	p := cpu[0]
	for k, v := range map[string]string{"cpu": "cpu-total", "container_name": "web", "engine_host": "node-1",
		"server_version": "20.10.24", "container_image": "img", "container_status": "running", "container_version": "1", "team": "a"} {
		if p.Tag(k) != v {
			t.Errorf("cpu tag %s=%q, want %q", k, p.Tag(k), v)
		}
	}
	if got, want := fieldKeys(p), "container_id,throttling_periods,throttling_throttled_periods,throttling_throttled_time,usage_in_kernelmode,usage_in_usermode,usage_percent,usage_system,usage_total"; got != want {
		t.Errorf("cpu fields %s, want %s", got, want)
	}
	// 1e8 ns of CPU in 1e9 ns of host time on 2 CPUs: 20%.
	if v := p.Field("usage_percent"); v != 20.0 {
		t.Errorf("usage_percent %v, want 20", v)
	}
	if v := byName(first, MeasurementCPU)[0].Field("usage_percent"); v != nil {
		t.Errorf("usage_percent %v on the first reading, want none (no previous reading)", v)
	}
	mem := byName(second, MeasurementMem)[0]
	if got, want := fieldKeys(mem), "cache,container_id,limit,max_usage,rss,total_rss,usage,usage_percent"; got != want {
		t.Errorf("mem fields %s, want %s (shmem is not Telegraf's)", got, want)
	}
	if mem.Field("usage") != uint64(800) || mem.Field("usage_percent") != 20.0 {
		t.Errorf("mem usage %v %v, want usage - cache = 800, 20%%", mem.Field("usage"), mem.Field("usage_percent"))
	}
	net := byName(second, MeasurementNet)
	if len(net) != 1 || net[0].Tag("network") != "total" || net[0].Field("rx_bytes") != uint64(15) || net[0].Field("tx_bytes") != uint64(3) {
		t.Errorf("net %+v, want one total point summing the interfaces", net)
	}
	blk := byName(second, MeasurementBlkio)
	if len(blk) != 1 || blk[0].Tag("device") != "total" || blk[0].Field("io_service_bytes_recursive_read") != uint64(10) {
		t.Errorf("blkio %+v, want one total point", blk)
	}
	pids := byName(second, MeasurementPids)
	if len(pids) != 1 || pids[0].Field("current") != uint64(4) || pids[0].Field("limit") != uint64(100) {
		t.Errorf("pids %+v", pids)
	}
}

func TestCollectPerDevice(t *testing.T) {
	c := New(nil, fakeInv{running("c1", "web", true)}.box(), nil, Options{PerDevice: true}, &fakeReader{name: "fake"})
	points := c.Collect(context.Background())
	if len(byName(points, MeasurementDocker)) != 0 {
		t.Error("a docker point without an Info client")
	}
	tags := func(name, key string) string {
		var v []string
		for _, p := range byName(points, name) {
			v = append(v, p.Tag(key))
		}
		return strings.Join(v, ",")
	}
	for _, tc := range []struct{ m, tag, want string }{
		{MeasurementCPU, "cpu", "cpu-total,cpu0,cpu1"},
		{MeasurementNet, "network", "eth0,eth1,total"},
		{MeasurementBlkio, "device", "8:0,8:16,total"},
	} {
		if got := tags(tc.m, tc.tag); got != tc.want {
			t.Errorf("%s %s tags %s, want %s", tc.m, tc.tag, got, tc.want)
		}
	}
}

func TestCollectFallbackAndErrors(t *testing.T) {
	inv := fakeInv{running("c1", "a", true), running("c2", "b", true), running("c3", "c", true)}
	primary := &fakeReader{name: "cgroup", fail: map[string]bool{"c2": true, "c3": true}}
	fallback := &fakeReader{name: "api", fail: map[string]bool{"c3": true}}
	s := &sink{}
	c := New(s, inv.box(), fakeInfo{err: errors.New("down")}, Options{Concurrency: 2}, primary, fallback)
	points := c.Collect(context.Background())
	var names []string
	for _, p := range byName(points, MeasurementMem) {
		names = append(names, p.Tag("container_name"))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("mem points for %v, want a (cgroup) and b (api); c fails both", names)
	}
	self := c.Points(time.Now(), map[string]string{"engine_host": "h"})[0]
	for k, v := range map[string]any{"gathers": uint64(1), "containers": int64(3), "reads": uint64(2),
		"errors": uint64(2), "fallbacks": uint64(1), "cgroup_reads": uint64(1), "api_reads": uint64(1)} {
		if self.Field(k) != v {
			t.Errorf("lookout_resources %s=%v, want %v (errors: the container c and the Info call)", k, self.Field(k), v)
		}
	}
}

func TestRunStopsWithContext(t *testing.T) {
	s := &sink{}
	c := New(s, fakeInv{running("c1", "web", true)}.box(), nil, Options{Interval: 10 * time.Millisecond}, &fakeReader{name: "fake"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.points)
		s.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run sent nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestCollectKeepsTheEngineWhenInfoFails(t *testing.T) {
	info := &fakeInfoToggle{}
	c := New(nil, fakeInv{running("c1", "web", true)}.box(), info, Options{}, &fakeReader{name: "fake"})
	c.Collect(context.Background())
	info.err = errors.New("engine busy")
	points := c.Collect(context.Background())
	if len(byName(points, MeasurementDocker)) != 0 {
		t.Error("a docker point without an answer from Info")
	}
	if mem := byName(points, MeasurementMem); len(mem) != 1 || mem[0].Tag("engine_host") != "node-1" {
		t.Errorf("mem %+v: want engine_host from the last answer", mem)
	}
}

type fakeInfoToggle struct{ err error }

func (f *fakeInfoToggle) Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error) {
	return fakeInfo{err: f.err}.Info(ctx, opts)
}

// TestGatherSaysWhatItCouldNotRead: under Telegraf (lookout execd) no lookout_resources
// point is shipped, so a gather that could not read a container says so in its error,
// and still adds what it read.
func TestGatherSaysWhatItCouldNotRead(t *testing.T) {
	inv := fakeInv{running("c1", "web", true), running("c2", "api", true)}
	c := New(nil, inv.box(), fakeInfo{}, Options{}, &fakeReader{name: "fake", fail: map[string]bool{"c2": true}})
	var out, errs bytes.Buffer
	acc := execd.NewAccumulator(&out, &errs)
	err := c.Gather(acc)
	_ = acc.Flush()
	if err == nil || !strings.Contains(err.Error(), "1 read(s) failed") {
		t.Errorf("gather error %v, want it to count the one container it could not read", err)
	}
	if !strings.Contains(out.String(), "docker_container_mem,") || !strings.Contains(out.String(), "container_name=web") {
		t.Errorf("the readable container's points are missing:\n%s", out.String())
	}
	if err := New(nil, fakeInv{running("c1", "web", true)}.box(), fakeInfo{}, Options{}, &fakeReader{name: "fake"}).Gather(acc); err != nil {
		t.Errorf("a gather that read everything: %v", err)
	}
}

// TestStoppedAndRemovedContainersAreForgotten: the mailbox says a container stopped, then
// that it is gone; the collector stops reading it and keeps nothing of it.
func TestStoppedAndRemovedContainersAreForgotten(t *testing.T) {
	inv := fakeInv{running("c1", "web", true), running("c2", "api", true)}
	mb := inv.box()
	c := New(nil, mb, nil, Options{}, &fakeReader{name: "fake"})
	if n := len(byName(c.Collect(context.Background()), MeasurementCPU)); n != 2 {
		t.Fatalf("cpu points %d, want 2", n)
	}
	stopped := inv[1]
	stopped.State.Running = false
	mb.Put(inventory.Update{Container: &stopped, Engine: inv.Engine()})
	if cpu := byName(c.Collect(context.Background()), MeasurementCPU); len(cpu) != 1 || cpu[0].Tag("container_name") != "web" {
		t.Fatalf("after c2 stopped: %+v", cpu)
	}
	c.mu.Lock()
	_, kept := c.prev["c2"]
	c.mu.Unlock()
	if kept {
		t.Error("the stopped container's CPU reading is kept")
	}
	mb.Put(inventory.Update{Container: &stopped, Gone: true, Engine: inv.Engine()})
	c.Collect(context.Background())
	if _, ok := c.known["c2"]; ok || len(c.known) != 1 {
		t.Errorf("known after c2 was removed: %v", c.known)
	}
}
