package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestInfluxOutageLosesNothingTheBufferHolds stops InfluxDB while a container changes
// health, starts it again, and finds every transition.
func TestInfluxOutageLosesNothingTheBufferHolds(t *testing.T) {
	ix, err := startInflux(filepath.Join(t.TempDir(), "influx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Stop()
	db := dbName(t)
	name := "lk-outage-" + runID
	startAgent(t, "LOOKOUT_INFLUXDB_URL="+ix.URL, "LOOKOUT_INFLUXDB_DATABASE="+db, "LOOKOUT_INTERVAL=1s")
	runContainer(t, name, "--label", "lookout.enable=true")
	seq := func() []string { return healthSeq(t, ix, db, name) }
	eventually(t, 20*time.Second, "healthy", func() bool { return hasSubsequence(seq(), "healthy") })

	ix.Stop()
	for _, s := range []string{"unhealthy", "healthy", "unhealthy"} {
		docker(t, "exec", name, "/testsvc", "set", s)
		waitInspect(t, 20*time.Second, name, "{{.State.Health.Status}}", s)
	}
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every transition made during the outage", func() bool {
		return hasSubsequence(seq(), "healthy", "unhealthy", "healthy", "unhealthy")
	})
	eventually(t, 20*time.Second, "the output to report no drop", func() bool {
		rows := ix.query(t, db, `SELECT last(dropped) AS d, last(written) AS w FROM lookout_output WHERE "output"='influxdb'`)
		return len(rows) == 1 && rows[0].Int("d") == 0 && rows[0].Int("w") > 0
	})
}

// TestInfluxOutageOverflowIsCounted holds a tiny buffer through a longer outage: the
// oldest points go, and the agent says how many.
func TestInfluxOutageOverflowIsCounted(t *testing.T) {
	ix, err := startInflux(filepath.Join(t.TempDir(), "influx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Stop()
	db := dbName(t)
	name := "lk-overflow-" + runID
	a := startAgent(t, "LOOKOUT_INFLUXDB_URL="+ix.URL, "LOOKOUT_INFLUXDB_DATABASE="+db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_BUFFER_LIMIT=20", "LOOKOUT_BATCH_SIZE=5", "LOOKOUT_STDOUT=true")
	runContainer(t, name, "--label", "lookout.enable=true")
	eventually(t, 20*time.Second, "healthy", func() bool { return hasSubsequence(healthSeq(t, ix, db, name), "healthy") })
	ix.Stop()
	// Each 200 ms health run makes points: 20 lines of buffer fill in a few seconds.
	dropRe := regexp.MustCompile(`lookout_output,engine_host=[^ ]*,output=influxdb .*dropped=(\d+)i.*buffered=(\d+)i`)
	eventually(t, 30*time.Second, "the agent to count dropped points (seen on its stdout output)", func() bool {
		m := dropRe.FindAllStringSubmatch(a.out(), -1)
		if len(m) == 0 {
			return false
		}
		d, _ := strconv.Atoi(m[len(m)-1][1])
		b, _ := strconv.Atoi(m[len(m)-1][2])
		if b > 20 {
			t.Fatalf("buffered %d lines, more than the limit of 20", b)
		}
		return d > 20
	})
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the drop count to reach InfluxDB", func() bool {
		rows := ix.query(t, db, `SELECT last(dropped) AS d FROM lookout_output WHERE "output"='influxdb'`)
		return len(rows) == 1 && rows[0].Int("d") > 20
	})
}

func healthSeq(t *testing.T, ix *influx, db, container string) []string {
	rows := ix.query(t, db, fmt.Sprintf(
		`SELECT health_status FROM lookout_container_event WHERE action='health_status' AND container_name='%s'`, container))
	var seq []string
	for _, r := range rows {
		if s := r.Str("health_status"); len(seq) == 0 || seq[len(seq)-1] != s {
			seq = append(seq, s)
		}
	}
	return seq
}
