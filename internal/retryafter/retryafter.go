// Package retryafter reads the HTTP Retry-After header, for the agent's outputs (the
// InfluxDB shipper and the span exporter).
package retryafter

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Parse reads Retry-After as seconds or an HTTP date; 0 if absent or bad.
func Parse(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		// Clamp first: a huge value would overflow into a short or negative wait.
		return time.Duration(min(int64(s), math.MaxInt64/int64(time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
