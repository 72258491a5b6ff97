package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// validate checks the log forwarder's settings (only when it is on).
func (f Fluentd) validate(stateDir string) []error {
	if f.Address == "" {
		return nil
	}
	var errs []error
	bad := func(setting string, value any, allowed string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", setting, fmt.Sprint(value), allowed))
	}
	addr := strings.TrimPrefix(f.Address, "tcp://")
	if p, ok := strings.CutPrefix(f.Address, "unix://"); ok {
		if !strings.HasPrefix(p, "/") {
			bad("fluentd.address (LOOKOUT_FLUENTD_ADDRESS)", f.Address, "want host:port, tcp://host:port or unix:///path/to/socket")
		}
	} else if _, _, err := net.SplitHostPort(addr); err != nil || strings.Contains(addr, "/") {
		bad("fluentd.address (LOOKOUT_FLUENTD_ADDRESS)", f.Address, "want host:port, tcp://host:port or unix:///path/to/socket")
	}
	if _, err := labels.ParseLogTag(f.Tag); err != nil {
		bad("fluentd.tag (LOOKOUT_FLUENTD_TAG)", f.Tag, err.Error())
	}
	if f.BatchSize < 1 || f.BatchSize > 100000 {
		bad("fluentd.batch_size (LOOKOUT_FLUENTD_BATCH_SIZE)", f.BatchSize, "want 1 to 100000 records")
	}
	if f.BufferLimit < f.BatchSize {
		bad("fluentd.buffer_limit (LOOKOUT_FLUENTD_BUFFER_LIMIT)", f.BufferLimit, fmt.Sprintf("want at least the batch size (%d) records", f.BatchSize))
	}
	if f.MaxRecordSize < 1024 || f.MaxRecordSize > 64<<20 {
		bad("fluentd.max_record_size (LOOKOUT_FLUENTD_MAX_RECORD_SIZE)", f.MaxRecordSize, "want 1024 to 67108864 bytes")
	}
	if f.Start != "beginning" && f.Start != "now" {
		bad("fluentd.start (LOOKOUT_FLUENTD_START)", f.Start, "want beginning (a container's whole log) or now (only what it writes from now on)")
	}
	if time.Duration(f.Timeout) < 100*time.Millisecond {
		bad("fluentd.timeout (LOOKOUT_FLUENTD_TIMEOUT)", time.Duration(f.Timeout), "want 100ms or more")
	}
	if stateDir == "" {
		errs = append(errs, errors.New(`state_dir (LOOKOUT_STATE_DIR)="": the log forwarder keeps its positions there; want a directory`))
	}
	return errs
}
