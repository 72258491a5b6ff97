// Package healthcheck holds what every check has in common, native Docker HEALTHCHECKs
// and the probes the agent runs: one result type and the one measurement, lookout_check,
// that holds every result so that a single query can draw a status wall.
package healthcheck

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
	success := int64(0)
	if r.Result == Success {
		success = 1
	}
	fields := []metric.Field{
		{Key: "success", Value: success},
		{Key: "response_time", Value: r.Duration.Seconds()},
	}
	if r.ExitCode != nil {
		fields = append(fields, metric.Field{Key: "exit_code", Value: int64(*r.ExitCode)})
	}
	if r.Output != "" {
		fields = append(fields, metric.Field{Key: "output", Value: Truncate(r.Output, OutputLimit)})
	}
	return metric.New(Measurement, tags, fields, r.Start)
}

// Truncate caps s at limit bytes, saying how much was kept of how much.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	note := fmt.Sprintf(" … (captured %d of %d bytes)", limit, len(s))
	return s[:limit] + note
}
