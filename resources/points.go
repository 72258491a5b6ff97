package resources

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"

	"github.com/lookout-agent/lookout/metric"
)

// Measurement names: Telegraf's inputs.docker names, and Lookout's pids measurement,
// which Telegraf does not have.
const (
	MeasurementCPU    = "docker_container_cpu"
	MeasurementMem    = "docker_container_mem"
	MeasurementNet    = "docker_container_net"
	MeasurementBlkio  = "docker_container_blkio"
	MeasurementPids   = "lookout_container_pids"
	MeasurementDocker = "docker"
)

// memStats are the memory.stat keys Telegraf reports, under the same names.
var memStats = []string{
	"active_anon", "active_file", "cache", "hierarchical_memory_limit", "inactive_anon",
	"inactive_file", "mapped_file", "pgfault", "pgmajfault", "pgpgin", "pgpgout", "rss",
	"rss_huge", "total_active_anon", "total_active_file", "total_cache", "total_inactive_anon",
	"total_inactive_file", "total_mapped_file", "total_pgfault", "total_pgmajfault",
	"total_pgpgin", "total_pgpgout", "total_rss", "total_rss_huge", "total_unevictable",
	"total_writeback", "unevictable", "writeback",
}

// cpuPrev is the previous reading of a container's CPU, for usage_percent.
type cpuPrev struct {
	total, system uint64
}

// statsPoints turns one stats reading into Telegraf's points (as inputs.docker with its
// default total_include of cpu, blkio and network) plus lookout_container_pids.
// usage_percent of the CPU needs the previous reading prev; without one it is left out.
// perDevice adds the per-CPU, per-interface and per-device points.
func statsPoints(s *container.StatsResponse, tags map[string]string, prev *cpuPrev, perDevice bool) []metric.Point {
	id := s.ID
	t := s.Read
	var out []metric.Point

	mem := []metric.Field{{Key: "container_id", Value: id}}
	for _, k := range memStats {
		if v, ok := s.MemoryStats.Stats[k]; ok {
			mem = append(mem, metric.Field{Key: k, Value: v})
		}
	}
	if s.MemoryStats.Failcnt != 0 {
		mem = append(mem, metric.Field{Key: "fail_count", Value: s.MemoryStats.Failcnt})
	}
	used := memUsageNoCache(s.MemoryStats)
	mem = append(mem,
		metric.Field{Key: "limit", Value: s.MemoryStats.Limit},
		metric.Field{Key: "max_usage", Value: s.MemoryStats.MaxUsage},
		metric.Field{Key: "usage", Value: used},
		metric.Field{Key: "usage_percent", Value: percent(float64(used), float64(s.MemoryStats.Limit))})
	out = append(out, metric.New(MeasurementMem, tags, mem, t))

	c := s.CPUStats
	cpu := []metric.Field{
		{Key: "usage_total", Value: c.CPUUsage.TotalUsage},
		{Key: "usage_in_usermode", Value: c.CPUUsage.UsageInUsermode},
		{Key: "usage_in_kernelmode", Value: c.CPUUsage.UsageInKernelmode},
		{Key: "usage_system", Value: c.SystemUsage},
		{Key: "throttling_periods", Value: c.ThrottlingData.Periods},
		{Key: "throttling_throttled_periods", Value: c.ThrottlingData.ThrottledPeriods},
		{Key: "throttling_throttled_time", Value: c.ThrottlingData.ThrottledTime},
		{Key: "container_id", Value: id},
	}
	if prev != nil {
		cpu = append(cpu, metric.Field{Key: "usage_percent", Value: cpuPercent(prev, s)})
	}
	out = append(out, metric.New(MeasurementCPU, metric.WithTag(tags, "cpu", "cpu-total"), cpu, t))
	if perDevice {
		percpu := c.CPUUsage.PercpuUsage
		if c.OnlineCPUs > 0 && int(c.OnlineCPUs) < len(percpu) {
			percpu = percpu[:c.OnlineCPUs]
		}
		for i, v := range percpu {
			out = append(out, metric.New(MeasurementCPU, metric.WithTag(tags, "cpu", fmt.Sprintf("cpu%d", i)),
				[]metric.Field{{Key: "usage_total", Value: v}, {Key: "container_id", Value: id}}, t))
		}
	}

	if len(s.Networks) > 0 {
		var total [8]uint64
		for _, name := range sortedKeys(s.Networks) {
			n := s.Networks[name]
			v := [8]uint64{n.RxDropped, n.RxBytes, n.RxErrors, n.TxPackets, n.TxDropped, n.RxPackets, n.TxErrors, n.TxBytes}
			for i := range v {
				total[i] += v[i]
			}
			if perDevice {
				out = append(out, metric.New(MeasurementNet, metric.WithTag(tags, "network", name), netFields(v, id), t))
			}
		}
		out = append(out, metric.New(MeasurementNet, metric.WithTag(tags, "network", "total"), netFields(total, id), t))
	}

	devices := blkioByDevice(s.BlkioStats)
	totals := map[string]uint64{}
	for _, dev := range sortedKeys(devices) {
		fields := devices[dev]
		for k, v := range fields {
			totals[k] += v
		}
		if perDevice {
			out = append(out, metric.New(MeasurementBlkio, metric.WithTag(tags, "device", dev), blkioFields(fields, id), t))
		}
	}
	// As Telegraf, the total is sent even with no device: then it holds container_id only.
	out = append(out, metric.New(MeasurementBlkio, metric.WithTag(tags, "device", "total"), blkioFields(totals, id), t))

	pids := []metric.Field{{Key: "current", Value: s.PidsStats.Current}}
	if s.PidsStats.Limit > 0 {
		pids = append(pids, metric.Field{Key: "limit", Value: s.PidsStats.Limit})
	}
	pids = append(pids, metric.Field{Key: "container_id", Value: id})
	out = append(out, metric.New(MeasurementPids, tags, pids, t))
	return out
}

var netNames = [8]string{"rx_dropped", "rx_bytes", "rx_errors", "tx_packets", "tx_dropped", "rx_packets", "tx_errors", "tx_bytes"}

func netFields(v [8]uint64, id string) []metric.Field {
	f := make([]metric.Field, 0, 9)
	for i, n := range netNames {
		f = append(f, metric.Field{Key: n, Value: v[i]})
	}
	return append(f, metric.Field{Key: "container_id", Value: id})
}

func blkioFields(m map[string]uint64, id string) []metric.Field {
	f := make([]metric.Field, 0, len(m)+1)
	for _, k := range sortedKeys(m) {
		f = append(f, metric.Field{Key: k, Value: m[k]})
	}
	return append(f, metric.Field{Key: "container_id", Value: id})
}

// blkioByDevice groups block I/O entries by "major:minor" under Telegraf's field names.
func blkioByDevice(b container.BlkioStats) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	add := func(entries []container.BlkioStatEntry, prefix string, withOp bool) {
		for _, e := range entries {
			dev := fmt.Sprintf("%d:%d", e.Major, e.Minor)
			if out[dev] == nil {
				out[dev] = map[string]uint64{}
			}
			name := prefix
			if withOp {
				name += strings.ToLower(e.Op)
			}
			out[dev][name] = e.Value
		}
	}
	add(b.IoServiceBytesRecursive, "io_service_bytes_recursive_", true)
	add(b.IoServicedRecursive, "io_serviced_recursive_", true)
	add(b.IoQueuedRecursive, "io_queue_recursive_", true)
	add(b.IoServiceTimeRecursive, "io_service_time_recursive_", true)
	add(b.IoWaitTimeRecursive, "io_wait_time_", true)
	add(b.IoMergedRecursive, "io_merged_recursive_", true)
	add(b.IoTimeRecursive, "io_time_recursive", false)
	add(b.SectorsRecursive, "sectors_recursive", false)
	return out
}

// memUsageNoCache is Telegraf's memory use, in Telegraf's order: usage without the page
// cache where memory.stat has "cache" (cgroup v1), else without the inactive file cache.
func memUsageNoCache(m container.MemoryStats) uint64 {
	if v, ok := m.Stats["cache"]; ok && v < m.Usage {
		return m.Usage - v
	}
	if v, ok := m.Stats["total_inactive_file"]; ok && v < m.Usage {
		return m.Usage - v // cgroup v1
	}
	if v := m.Stats["inactive_file"]; v < m.Usage {
		return m.Usage - v // cgroup v2
	}
	return m.Usage
}

func cpuPercent(prev *cpuPrev, s *container.StatsResponse) float64 {
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(prev.total)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(prev.system)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		return cpuDelta / sysDelta * online * 100
	}
	return 0
}

func percent(part, whole float64) float64 {
	if whole == 0 {
		return 0
	}
	return part / whole * 100
}

// dockerPoint is Telegraf's engine summary, the docker measurement (memory_total, which
// Telegraf sends as a second line with the same tags and time, is in the same point).
func dockerPoint(info system.Info, t time.Time) metric.Point {
	return metric.New(MeasurementDocker, map[string]string{"engine_host": info.Name, "server_version": info.ServerVersion},
		[]metric.Field{
			{Key: "n_cpus", Value: int64(info.NCPU)},
			{Key: "n_used_file_descriptors", Value: int64(info.NFd)},
			{Key: "n_containers", Value: int64(info.Containers)},
			{Key: "n_containers_running", Value: int64(info.ContainersRunning)},
			{Key: "n_containers_stopped", Value: int64(info.ContainersStopped)},
			{Key: "n_containers_paused", Value: int64(info.ContainersPaused)},
			{Key: "n_images", Value: int64(info.Images)},
			{Key: "n_goroutines", Value: int64(info.NGoroutines)},
			{Key: "n_listener_events", Value: int64(info.NEventsListener)},
			{Key: "memory_total", Value: info.MemTotal},
		}, t)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
