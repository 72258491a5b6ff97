package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

func influxEnv(db string, extra ...string) []string {
	return append([]string{"LOOKOUT_INFLUXDB_URL=" + sharedInflx.URL, "LOOKOUT_INFLUXDB_DATABASE=" + db,
		"LOOKOUT_INTERVAL=1s"}, extra...)
}

// healthSequence returns the distinct successive health_status values of a container's
// health_status events, in time order.
func healthSequence(t *testing.T, db, container string) []string {
	rows := sharedInflx.query(t, db, fmt.Sprintf(
		`SELECT health_status FROM lookout_container_event WHERE action='health_status' AND container_name='%s'`, container))
	var seq []string
	for _, r := range rows {
		s := r.Str("health_status")
		if len(seq) == 0 || seq[len(seq)-1] != s {
			seq = append(seq, s)
		}
	}
	return seq
}

func hasSubsequence(seq []string, want ...string) bool {
	i := 0
	for _, s := range seq {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestNativeHealthTransitionsReachInfluxDB(t *testing.T) {
	db := dbName(t)
	name := "lk-health-" + runID
	quiet := "lk-quiet-" + runID
	startAgent(t, influxEnv(db)...)
	runContainer(t, name, "--label", "lookout.enable=true", "--label", "lookout.tags.team=payments")
	runContainer(t, quiet) // no opt-in label: must produce nothing

	eventually(t, 20*time.Second, "healthy in InfluxDB", func() bool {
		return hasSubsequence(healthSequence(t, db, name), "healthy")
	})
	docker(t, "exec", name, "/testsvc", "set", "unhealthy")
	eventually(t, 20*time.Second, "unhealthy in InfluxDB", func() bool {
		return hasSubsequence(healthSequence(t, db, name), "healthy", "unhealthy")
	})
	docker(t, "exec", name, "/testsvc", "set", "healthy")
	eventually(t, 20*time.Second, "healthy again in InfluxDB", func() bool {
		return hasSubsequence(healthSequence(t, db, name), "healthy", "unhealthy", "healthy")
	})

	// The health measurement carries the numbers for alerting at the transition.
	rows := sharedInflx.query(t, db, fmt.Sprintf(
		`SELECT * FROM docker_container_health WHERE container_name='%s' AND health_status='unhealthy'`, name))
	if len(rows) == 0 {
		t.Fatal("no unhealthy docker_container_health point")
	}
	var sawFailure bool
	for _, r := range rows {
		if r.Int("healthy") != 0 || r.Int("health_code") != 2 {
			t.Errorf("unhealthy point with healthy=%v health_code=%v", r["healthy"], r["health_code"])
		}
		if r.Str("team") != "payments" || r.Str("container_image") != "lookout-testsvc" || r.Str("container_version") != "e2e" {
			t.Errorf("tags: team=%q image=%q version=%q", r.Str("team"), r.Str("container_image"), r.Str("container_version"))
		}
		if r.Int("last_exit_code") == 1 && strings.Contains(r.Str("last_output"), "check failed") {
			sawFailure = true
		}
	}
	if !sawFailure {
		t.Errorf("no unhealthy point carries the failed run's exit code 1 and output: %v", rows)
	}
	// Every run is a lookout_check point; the failed ones say so.
	fails := sharedInflx.query(t, db, fmt.Sprintf(
		`SELECT success, exit_code, output FROM lookout_check WHERE container_name='%s' AND "check"='healthcheck' AND result='failure'`, name))
	if len(fails) == 0 || fails[0].Int("success") != 0 || fails[0].Int("exit_code") != 1 {
		t.Errorf("lookout_check failures = %v", fails)
	}

	dieWith(t, name, 7)
	eventually(t, 20*time.Second, "die event with exit code 7", func() bool {
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT exit_code, "text" FROM lookout_container_event WHERE action='die' AND container_name='%s'`, name))
		return len(rows) == 1 && rows[0].Int("exit_code") == 7 && strings.Contains(rows[0].Str("text"), "exit code 7")
	})
	eventually(t, 20*time.Second, "exited status with exitcode 7", func() bool {
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT exitcode FROM docker_container_status WHERE container_name='%s' AND container_status='exited'`, name))
		return len(rows) > 0 && rows[len(rows)-1].Int("exitcode") == 7
	})

	if rows := sharedInflx.query(t, db, fmt.Sprintf(`SELECT * FROM /.*/ WHERE container_name='%s'`, quiet)); len(rows) != 0 {
		t.Errorf("a container without lookout.enable=true produced %d points, e.g. %v", len(rows), rows[0])
	}
}

func TestTagValuesArriveIntact(t *testing.T) {
	db := dbName(t)
	name := "lk.odd_name-" + runID
	values := map[string]string{
		"spaces":  "a value with spaces",
		"commas":  "one,two,,three",
		"equals":  "k=v==w",
		"quotes":  `say "hi" 'there'`,
		"slashes": `C:\path\to\x`,
		"unicode": "ünïcødé 日本語 🚀",
		"mixed":   `a b,c=d"e\f`,
	}
	args := []string{"--label", "lookout.enable=true"}
	for k, v := range values {
		args = append(args, "--label", "lookout.tags."+k+"="+v)
	}
	startAgent(t, influxEnv(db)...)
	runContainer(t, name, args...)
	eventually(t, 20*time.Second, "status point", func() bool {
		return len(sharedInflx.query(t, db, fmt.Sprintf(`SELECT * FROM docker_container_status WHERE container_name='%s'`, name))) > 0
	})
	rows := sharedInflx.query(t, db, fmt.Sprintf(`SELECT * FROM docker_container_status WHERE container_name='%s' LIMIT 1`, name))
	for k, want := range values {
		if got := rows[0].Str(k); got != want {
			t.Errorf("tag %s = %q, want %q", k, got, want)
		}
	}
}

func TestContainersBeforeAndAfterStartAndDockerOutage(t *testing.T) {
	db := dbName(t)
	before := "lk-before-" + runID
	after := "lk-after-" + runID
	runContainer(t, before, "--label", "lookout.enable=true")
	px := startProxy(t, agentSocket())
	metrics := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort())
	a := startAgent(t, influxEnv(db, "LOOKOUT_DOCKER_HOST=tcp://"+px.Addr, "LOOKOUT_METRICS_ADDRESS="+metrics)...)
	healthz := func() (int, string) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + metrics + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, 20*time.Second, "/healthz 200 while connected", func() bool { code, _ := healthz(); return code == 200 })
	runContainer(t, after, "--label", "lookout.enable=true")
	for _, n := range []string{before, after} {
		n := n
		eventually(t, 20*time.Second, n+" healthy", func() bool { return hasSubsequence(healthSequence(t, db, n), "healthy") })
	}

	// Cut the agent off Docker; things happen while it is blind.
	px.Cut()
	eventually(t, 10*time.Second, "the agent to notice the outage", func() bool {
		return strings.Contains(a.logs(), "lost the Docker Engine")
	})
	if code, body := healthz(); code != 503 || !strings.Contains(body, "not connected") {
		t.Errorf("/healthz during the outage: %d %q, want 503 naming the lost connection", code, body)
	}
	// Each change is awaited as Docker records it (a health run may take long on a busy
	// machine) and no longer: Docker keeps only its last 256 events for the replay.
	const health = "{{.State.Health.Status}}"
	docker(t, "exec", before, "/testsvc", "set", "unhealthy")
	waitInspect(t, 20*time.Second, before, health, "unhealthy")
	docker(t, "exec", before, "/testsvc", "set", "healthy")
	waitInspect(t, 20*time.Second, before, health, "healthy")
	dieWith(t, after, 3)
	if err := px.Restore(); err != nil {
		t.Fatal(err)
	}

	eventually(t, 20*time.Second, "/healthz 200 again after the reconnect", func() bool { code, _ := healthz(); return code == 200 })
	eventually(t, 40*time.Second, "transitions made during the outage", func() bool {
		return hasSubsequence(healthSequence(t, db, before), "healthy", "unhealthy", "healthy")
	})
	eventually(t, 20*time.Second, "die during the outage", func() bool {
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT exit_code FROM lookout_container_event WHERE action='die' AND container_name='%s'`, after))
		return len(rows) == 1 && rows[0].Int("exit_code") == 3
	})
	eventually(t, 20*time.Second, "reconnects counted", func() bool {
		rows := sharedInflx.query(t, db, `SELECT last(reconnects) FROM lookout_inventory`)
		return len(rows) == 1 && rows[0].Int("last") >= 1
	})
}
