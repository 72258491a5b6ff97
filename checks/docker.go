package checks

import (
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
)

// Docker runs a container's HEALTHCHECK itself and keeps the last runs in the health
// log; what is read there becomes the same Result as the agent's own probes (check
// "healthcheck", type "docker").

// NewRuns returns the finished runs of a health log that started after last, and the
// start of the latest of them (last when there is none): Docker keeps the last five
// runs, so every change shows some already reported.
func NewRuns(log []*container.HealthcheckResult, last time.Time) ([]*container.HealthcheckResult, time.Time) {
	var runs []*container.HealthcheckResult
	for _, run := range log {
		if run == nil || !run.Start.After(last) || run.End.IsZero() {
			continue
		}
		last = run.Start
		runs = append(runs, run)
	}
	return runs, last
}

// NativeResult turns one HEALTHCHECK run into a check result. Docker's exit codes: 0
// healthy, 1 unhealthy, anything else an error running the probe; a probe that ran out
// of time has exit code -1 and says so in its output.
func NativeResult(run *container.HealthcheckResult) Result {
	code := run.ExitCode
	r := Result{Check: "healthcheck", Type: "docker", Start: run.Start,
		Duration: run.End.Sub(run.Start), ExitCode: &code, Output: strings.TrimSpace(run.Output)}
	switch {
	case code == 0:
		r.Result = Success
	case code == 1:
		r.Result = Failure
	case code == -1 && strings.Contains(run.Output, "exceeded timeout"):
		r.Result = Timeout
	default:
		r.Result = Error
	}
	return r
}
