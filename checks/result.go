package checks

// What every check has in common, native Docker HEALTHCHECKs and the probes the agent
// runs: one result type and the one measurement, lookout_check, that holds every result
// so that a single query can draw a status wall.

import (
	"fmt"
	"time"

	"github.com/lookout-agent/lookout/metric"
)

// Measurement is the name of the measurement holding every check result.
const Measurement = "lookout_check"

// OutputLimit caps the output kept from one run.
const OutputLimit = 4096

// Result values, the "result" tag of lookout_check.
const (
	Success = "success"
	Failure = "failure" // the check ran and said no (exit code 1, bad status, …)
	Timeout = "timeout"
	Error   = "error" // the check could not run
)

// Result is one run of one check.
type Result struct {
	Check    string // the check's name; "healthcheck" for Docker's own
	Type     string // docker, http, tcp or exec
	Result   string // Success, Failure, Timeout or Error
	Start    time.Time
	Duration time.Duration
	ExitCode *int   // for docker and exec checks
	Output   string // truncated to OutputLimit
	Reason   string // why it did not succeed, for people: "status 500 not in 200-399"
	// Refused: the agent would not let the check go where it asked (a host, an address
	// or a redirect: see Target and guard.go); Reason starts with "refused: ".
	Refused bool

	Target     string // the address probed ("10.0.1.3:8080"); a field, not a tag: it changes with restarts
	StatusCode int    // HTTP status, 0 if none
	Phases     Phases // HTTP timings; zero phases are left out
}

// Phases are the timings of an HTTP probe, as blackbox_exporter reports them.
type Phases struct {
	DNS, Connect, TLS, FirstByte time.Duration
}

// Point renders r as a lookout_check point with the container's tags.
func (r Result) Point(containerTags map[string]string) metric.Point {
	tags := make(map[string]string, len(containerTags)+3)
	for k, v := range containerTags {
		tags[k] = v
	}
	tags["check"] = r.Check
	tags["type"] = r.Type
	tags["result"] = r.Result
	return metric.New(Measurement, tags, r.Fields(), r.Start)
}

// Fields returns the fields of r's lookout_check point.
func (r Result) Fields() []metric.Field {
	success := int64(0)
	if r.Result == Success {
		success = 1
	}
	fields := make([]metric.Field, 2, 8)
	fields[0] = metric.Field{Key: "success", Value: success}
	fields[1] = metric.Field{Key: "response_time", Value: r.Duration.Seconds()}
	if r.ExitCode != nil {
		fields = append(fields, metric.Field{Key: "exit_code", Value: int64(*r.ExitCode)})
	}
	if r.Output != "" {
		fields = append(fields, metric.Field{Key: "output", Value: Truncate(r.Output, OutputLimit)})
	}
	if r.Reason != "" {
		fields = append(fields, metric.Field{Key: "reason", Value: r.Reason})
	}
	if r.Target != "" {
		fields = append(fields, metric.Field{Key: "target", Value: r.Target})
	}
	if r.StatusCode > 0 {
		fields = append(fields, metric.Field{Key: "http_response_code", Value: int64(r.StatusCode)})
	}
	for _, ph := range []struct {
		key string
		d   time.Duration
	}{{"dns_time", r.Phases.DNS}, {"connect_time", r.Phases.Connect}, {"tls_time", r.Phases.TLS}, {"first_byte_time", r.Phases.FirstByte}} {
		if ph.d > 0 {
			fields = append(fields, metric.Field{Key: ph.key, Value: ph.d.Seconds()})
		}
	}
	return fields
}

// Truncate caps s at limit bytes, saying how much was kept of how much.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	note := fmt.Sprintf(" … (captured %d of %d bytes)", limit, len(s))
	return s[:limit] + note
}
