package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogsSharedKey: a receiver that requires the shared-key handshake (its front does the
// server side, as Fluentd's in_forward with <security>) refuses an agent with the wrong
// key, which says so without showing the key and counts the retries; an agent with the
// right key then delivers every line once.
func TestLogsSharedKey(t *testing.T) {
	dir := t.TempDir()
	key, wrong := filepath.Join(dir, "key"), filepath.Join(dir, "wrong")
	for path, k := range map[string]string{key: "e2e-shared-k3y", wrong: "e2e-wrong-k3y"} {
		if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := startFluentd(t, "-shared-key-file", key)
	p := runID + "-logkey"
	runLogContainer(t, p, []string{"--label", "lookout.enable=true"}, "seq", "key", "50", "2ms")

	bad := startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_STATE_DIR="+t.TempDir(), "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_FLUENTD_SHARED_KEY_FILE="+wrong, "LOOKOUT_FLUENTD_SELF_HOSTNAME=e2e-node")
	eventually(t, 60*time.Second, "the wrong key refused, and retried", func() bool {
		return strings.Contains(bad.logs(), `Fluentd refused the shared-key handshake: \"shared_key mismatch\"`) &&
			regexp.MustCompile(`lookout_logs_total,[^ ]* [^ ]*retried=[1-9]`).MatchString(bad.out())
	})
	bad.stop(t)
	for _, secret := range []string{"e2e-wrong-k3y", "e2e-shared-k3y"} {
		if strings.Contains(bad.logs()+bad.out(), secret) {
			t.Errorf("the agent showed the shared key %q", secret)
		}
	}
	if got := recordsOf(t, f, p); len(got) != 0 {
		t.Fatalf("%d records arrived with the wrong key", len(got))
	}

	startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_STATE_DIR="+t.TempDir(), "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_FLUENTD_SHARED_KEY_FILE="+key)
	eventually(t, 60*time.Second, "50 lines with the right key", func() bool { return len(recordsOf(t, f, p)) >= 50 })
	lines := countLines(recordsOf(t, f, p))
	for i := 1; i <= 50; i++ {
		if n := lines[fmt.Sprintf("key %d", i)]; n != 1 {
			t.Errorf("line %d arrived %d times, want once", i, n)
		}
	}
}
