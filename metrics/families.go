package metrics

import dto "github.com/prometheus/client_model/go"

// Kind is how a scraper reads a family.
type Kind int

const (
	// Untyped is only for a field missing from the table.
	Untyped Kind = iota
	// Counter only goes up (until the agent restarts): rate() applies.
	Counter
	// Gauge is a current value or a state (booleans are 1 or 0).
	Gauge
)

func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "untyped"
}

func (k Kind) dto() dto.MetricType {
	switch k {
	case Counter:
		return dto.MetricType_COUNTER
	case Gauge:
		return dto.MetricType_GAUGE
	}
	return dto.MetricType_UNTYPED
}

// Desc is a family's type and HELP text.
type Desc struct {
	Kind Kind
	Help string
}

// Describe returns the type and help of the field of a measurement, and whether the table
// has it.
func Describe(measurement, field string) (Desc, bool) {
	d, ok := table[measurement][field]
	return d, ok
}

// Measurements lists the measurements of the table with their fields (for the docs and
// the tests).
func Measurements() map[string]map[string]Desc { return table }

func counter(help string) Desc { return Desc{Counter, help} }
func gauge(help string) Desc   { return Desc{Gauge, help} }

// logCounters are the fields of lookout_logs (per container) and of lookout_logs_total.
var logCounters = map[string]Desc{
	"lines":           counter("Log lines acknowledged by Fluentd."),
	"bytes":           counter("Bytes of log lines acknowledged by Fluentd."),
	"retried":         counter("Log records sent again."),
	"dropped":         counter("Docker log messages that could not be parsed."),
	"truncated":       counter("Log records cut to the maximum record size."),
	"split":           counter("Multiline log records sent on reaching the maximum record size; the next line starts another record."),
	"position_errors": counter("Acknowledged batches whose read position could not be saved, and saved positions that could not be read."),
	"lines_file":      counter("Log lines acknowledged by Fluentd that were read from the json-file log file."),
	"lines_api":       counter("Log lines acknowledged by Fluentd that were read through the Docker logs API."),
	"fallbacks":       counter("Follows that took the Docker logs API with logs.source=auto because the log file could not be used (another log driver, a remote engine, an unreadable file)."),
	"rotated_lost":    counter("Times rotated log files were found deleted by Docker before they were read: lines may be lost (may over-count)."),
}

func withLogTotals(m map[string]Desc) map[string]Desc {
	out := map[string]Desc{
		"followed":      gauge("Containers whose logs are being read."),
		"followed_file": gauge("Containers whose logs are being read from their json-file log file."),
		"followed_api":  gauge("Containers whose logs are being read through the Docker logs API."),
	}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// table holds, for every field of every self point (collectors.Self and its sources), its
// type and HELP text; the family is <measurement>_<field>. Read only.
var table = map[string]map[string]Desc{
	// collectors.Self
	"lookout_agent": {
		"uptime_ns":        gauge("Nanoseconds since the agent started."),
		"goroutines":       gauge("Goroutines of the agent."),
		"heap_alloc_bytes": gauge("Bytes of allocated heap objects (Go runtime HeapAlloc)."),
		"heap_live_bytes":  gauge("Bytes of heap objects the last garbage collection found live (Go runtime /gc/heap/live:bytes): what the agent holds, without the garbage heap_alloc_bytes also counts."),
		"gc_cycles":        counter("Garbage collections completed (Go runtime /gc/cycles/total:gc-cycles)."),
		"sys_bytes":        gauge("Bytes of memory obtained from the OS (Go runtime Sys)."),
		"pid":              gauge("Process ID of the agent."),
		"reports":          counter("Reports (lookout_agent points) this process has made, this one included: 1, 2, 3, … so that a hole in the series at the database shows points lost on the way."),
	},
	// collectors.Self, on /metrics only: how each source's points were gathered, as
	// node_exporter's node_scrape_collector_*.
	"lookout_scrape_collector": {
		"duration_seconds": gauge("Seconds the collector took to gather its points at the last report."),
		"success":          gauge("1 if the collector gathered its points at the last report, 0 if it panicked."),
	},
	// shipper
	"lookout_output": {
		"written":           counter("Lines the output delivered."),
		"dropped":           counter("Lines dropped because the queue in memory or on disk was full (oldest first)."),
		"rejected":          counter("Lines refused by the server (400, 422, 413)."),
		"invalid":           counter("Points that could not be encoded as line protocol."),
		"skipped_fields":    counter("Fields left out of a line because their value was NaN or Inf."),
		"retries":           counter("Batches sent again after a failure."),
		"write_errors":      counter("Writes that failed."),
		"buffered":          gauge("Lines not yet finished with, in memory and on disk."),
		"buffered_bytes":    gauge("Bytes of the disk queue's files."),
		"oldest_seconds":    gauge("Age in seconds of the oldest line still queued (0 if none)."),
		"corrupt":           counter("Disk queue records found damaged and skipped."),
		"dropped_disk_full": counter("Lines deleted to make room on a full disk."),
		"disk_errors":       counter("Batches the disk refused (kept in memory only), and 1 if the queue could not be opened."),
		"disk":              gauge("1 while the output has a disk queue."),
	},
	// inventory
	"lookout_inventory": {
		"connected":      gauge("1 while the agent is connected to the Docker Engine."),
		"containers":     gauge("Containers known to the inventory."),
		"monitored":      gauge("Containers monitored (lookout.enable or LOOKOUT_MONITOR_ALL)."),
		"events":         counter("Docker events received."),
		"events_dropped": counter("Docker events dropped on a full queue."),
		"reconnects":     counter("Reconnections to the Docker Engine."),
		"relists":        counter("Full relists of the containers."),
		"inspect_errors": counter("Container (and docker_gwbridge network) inspections that failed."),
		"label_problems": counter("Bad or unknown lookout.* labels found on monitored containers."),
		"events_queued":  gauge("Docker events read and not handled yet (the event loop inspects a container per event)."),
		"event_lag_ms":   gauge("How late the last Docker event handled was: now minus the event's time, in milliseconds."),
	},
	// inventory: each feature's mailbox
	"lookout_feature": {
		"pending":     gauge("Containers with an update the feature has not taken yet."),
		"pending_max": gauge("The most updates the feature ever had pending."),
		"panics":      counter("Panics of the feature recovered (on a container update or in its loop)."),
	},
	// probes
	"lookout_probes": {
		"checks":           gauge("Agent-run checks running now."),
		"runs":             counter("Check runs."),
		"skipped_stopping": counter("Scheduled check runs not started: the engine was stopping the container (a kill, die, stop or pause event not yet applied)."),
		"panics":           counter("Prober panics recovered (a bug in lookout): the run counts as an error."),
	},
	// logs
	"lookout_logs":       logCounters,
	"lookout_logs_total": withLogTotals(logCounters),
	// resources
	"lookout_resources": {
		"gathers":           counter("Resource gathers."),
		"containers":        gauge("Containers read at the last gather."),
		"reads":             counter("Container resource reads."),
		"cgroup_reads":      counter("Container resource reads from cgroup files."),
		"api_reads":         counter("Container resource reads from Docker's stats API."),
		"cgroup_files_open": gauge("Cgroup files kept open between reads."),
		"errors":            counter("Containers, or the engine summary, that could not be read."),
		"fallbacks":         counter("Reads from the stats API because the cgroup files could not be read."),
		"gather_time":       gauge("Seconds the last gather took."),
	},
	// tracing
	"lookout_spans_export": {
		"queued":               gauge("Spans held for the collector now."),
		"queued_bytes":         gauge("Memory the spans held take now (estimated), bounded by LOOKOUT_SPANS_QUEUE_LIMIT_BYTES."),
		"forwarded":            counter("Spans taken by the collector."),
		"dropped_queue_full":   counter("Spans dropped because the span queue was full."),
		"dropped_send_failure": counter("Spans refused by the collector (a 4xx other than 429, an OTLP partial success), or still queued at shutdown."),
		"requests":             counter("Requests sent to the collector."),
		"request_failures":     counter("Requests to the collector that failed."),
	},
	"lookout_spans_relay": {
		"packets_received":            counter("UDP packets received by the jaeger-agent relay."),
		"spans_received":              counter("Spans received by the jaeger-agent relay."),
		"packets_dropped_too_large":   counter("UDP packets dropped for being above the maximum size."),
		"packets_dropped_malformed":   counter("UDP packets dropped because they could not be decoded."),
		"packets_dropped_socket_full": counter("UDP packets the kernel dropped because the relay's receive buffer was full (sent faster than the relay reads; SO_RXQ_OVFL, counted when the next packet is read)."),
		"spans_dropped_queue_full":    counter("Spans dropped because the span queue was full."),
		"packets_unknown_sender":      counter("UDP packets from an address no monitored container has (forwarded untagged)."),
	},
	"lookout_spans_otlp": {
		"requests_received":               counter("OTLP/HTTP requests received."),
		"spans_received":                  counter("Spans received over OTLP/HTTP."),
		"requests_malformed":              counter("OTLP/HTTP requests that could not be decoded."),
		"requests_too_large":              counter("OTLP/HTTP requests above the maximum size."),
		"requests_unsupported_media_type": counter("OTLP/HTTP requests with a content type or encoding not served."),
		"requests_queue_full":             counter("OTLP/HTTP requests answered 503 because the span queue could not take their spans."),
		"requests_busy":                   counter("OTLP/HTTP requests answered 503 because the OTLP receivers held as many request bytes as they may (4 times LOOKOUT_OTLP_MAX_REQUEST_SIZE)."),
		"spans_dropped_malformed":         counter("Spans received over OTLP/HTTP without a valid trace or span ID."),
		"requests_unknown_sender":         counter("OTLP/HTTP requests from an address no monitored container has (forwarded untagged)."),
	},
	"lookout_spans_otlp_grpc": {
		"requests_received":               counter("OTLP/gRPC calls received."),
		"spans_received":                  counter("Spans received over OTLP/gRPC."),
		"requests_malformed":              counter("OTLP/gRPC calls that could not be decoded."),
		"requests_too_large":              counter("OTLP/gRPC calls above the maximum size (RESOURCE_EXHAUSTED)."),
		"requests_unsupported_media_type": counter("OTLP/gRPC calls with a content type, grpc-encoding or method not served."),
		"requests_queue_full":             counter("OTLP/gRPC calls answered UNAVAILABLE because the span queue could not take their spans."),
		"requests_busy":                   counter("OTLP/gRPC calls answered UNAVAILABLE because the OTLP receivers held as many request bytes as they may (4 times LOOKOUT_OTLP_MAX_REQUEST_SIZE)."),
		"spans_dropped_malformed":         counter("Spans received over OTLP/gRPC without a valid trace or span ID."),
		"requests_unknown_sender":         counter("OTLP/gRPC calls from an address no monitored container has (forwarded untagged)."),
	},
	"lookout_spans_probes": {
		"spans": counter("Check spans made."),
	},
}
