package checks

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

func TestNativeResult(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		output string
		want   string
	}{
		{"exit 0", 0, "ok", Success},
		{"exit 1", 1, "connection refused", Failure},
		{"timeout", -1, "Health check exceeded timeout (3s)", Timeout},
		{"-1 without timeout", -1, "OCI runtime exec failed", Error},
		{"exit 2 reserved", 2, "", Error},
		{"exit 137 killed", 137, "", Error},
		{"exit 126 not executable", 126, "permission denied", Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2024, 5, 1, 10, 1, 0, 0, time.UTC)
			r := NativeResult(&container.HealthcheckResult{Start: start, End: start.Add(1500 * time.Millisecond),
				ExitCode: tt.code, Output: "\n" + tt.output + "\n"})
			if r.Result != tt.want {
				t.Errorf("Result = %q, want %q", r.Result, tt.want)
			}
			if r.Check != "healthcheck" || r.Type != "docker" || !r.Start.Equal(start) ||
				r.Duration != 1500*time.Millisecond || r.ExitCode == nil || *r.ExitCode != tt.code || r.Output != tt.output {
				t.Errorf("NativeResult = %+v", r)
			}
		})
	}
}
