package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// startSocketProxy runs deploy/socket-proxy/haproxy.cfg in front of the engine under test
// (listen "": a free loopback port; see testpeer.StartSocketProxy).
func startSocketProxy(t *testing.T, dir string, allowExec bool, listen string) *testpeer.SocketProxy {
	t.Helper()
	root, _ := filepath.Abs("..")
	p, err := testpeer.StartSocketProxy(filepath.Join(root, "deploy", "socket-proxy", "haproxy.cfg"), dir, testpeer.EngineSocket(), allowExec, listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// refused returns the requests the proxy answered 403, as "METHOD path" with the API
// version, container or exec IDs and the query left out, counted.
func refused(t *testing.T, p *testpeer.SocketProxy) map[string]int {
	reqs, err := p.Requests()
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`^/v[0-9.]+|/(containers|exec)/[^/]+`)
	out := map[string]int{}
	for _, r := range reqs {
		if r.Status == http.StatusForbidden {
			path, _, _ := strings.Cut(r.Path, "?")
			out[r.Method+" "+id.ReplaceAllStringFunc(path, func(s string) string {
				if strings.HasPrefix(s, "/v") {
					return ""
				}
				return s[:strings.LastIndexByte(s, '/')] + "/ID"
			})]++
		}
	}
	return out
}

// TestSocketProxy runs the agent through the read-only socket proxy that
// deploy/socket-proxy/haproxy.cfg sets up (HAProxy from Debian), every feature on: Docker
// health, an HTTP and an exec check, resources from the stats API, logs through both
// sources, check spans. All of it works read-only but the exec check, which reports the
// proxy's 403 until the proxy is restarted with EXEC=1; the proxy refuses every write the
// agent does not make.
func TestSocketProxy(t *testing.T) {
	dir := t.TempDir()
	proxy := startSocketProxy(t, dir, false, "")
	f := startFluentd(t)
	j := startJaeger(t)
	db := dbName(t)
	// Behind a tcp:// proxy the agent cannot ask where Docker keeps the json-file logs: the
	// setting says (docs/logs.md#sources).
	containersDir := filepath.Join(docker(t, "info", "-f", "{{.DockerRootDir}}"), "containers")
	started := time.Now()
	a := startAgent(t, influxEnv(db, "LOOKOUT_DOCKER_HOST="+proxy.Host, "LOOKOUT_RESOURCES=api",
		"LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_LOGS_SOURCE=auto", "LOOKOUT_LOGS_CONTAINERS_DIR="+containersDir,
		"LOOKOUT_JAEGER_ENDPOINT="+j.CollectorURL, "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms")...)
	svc := "lk-sproxy-" + runID
	runContainer(t, svc, "--label", "lookout.enable=true",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.cli=exec:/testsvc exit 0", "--label", "lookout.check.cli.interval=1s")
	on := []string{"--label", "lookout.enable=true"}
	fileLog, apiLog := svc+"-file", svc+"-api"
	runLogContainer(t, fileLog, on, "seq", "f", "60", "5ms")
	runLogContainer(t, apiLog, append([]string{"--log-driver", "local"}, on...), "seq", "a", "60", "5ms")

	waitCheck(t, db, svc, "web", "success", "")
	cli := waitCheck(t, db, svc, "cli", "error", "cannot create exec: 403 Forbidden")
	if r := cli.Str("reason"); !strings.Contains(r, "the socket proxy refuses POST /v") || strings.Contains(r, "\n") {
		t.Errorf("exec check reason %q: want the proxy's refusal on one line", r)
	}
	eventually(t, 30*time.Second, "Docker health through the proxy", func() bool {
		return len(sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT * FROM docker_container_health WHERE container_name='%s' AND health_status='healthy'`, svc))) > 0
	})
	eventually(t, 30*time.Second, "resources from the stats API through the proxy", func() bool {
		return len(sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT usage_percent FROM docker_container_cpu WHERE container_name='%s'`, svc))) > 0 &&
			len(sharedInflx.query(t, db, fmt.Sprintf(`SELECT usage FROM docker_container_mem WHERE container_name='%s'`, svc))) > 0
	})
	for _, name := range []string{fileLog, apiLog} {
		eventually(t, 60*time.Second, "60 log records of "+name, func() bool { return len(recordsOf(t, f, name)) >= 60 })
	}
	exactlyOnce(t, recordsOf(t, f, fileLog), "f", 60)
	exactlyOnce(t, recordsOf(t, f, apiLog), "a", 60)
	eventually(t, 30*time.Second, "the json-file log read from its file, the local one through the API", func() bool {
		rows := sharedInflx.query(t, db, `SELECT last(lines_file) AS f, last(lines_api) AS a FROM lookout_logs_total`)
		return len(rows) > 0 && rows[0].Int("f") >= 60 && rows[0].Int("a") >= 60
	})
	eventually(t, 60*time.Second, "a check span in Jaeger", func() bool {
		spans, _ := spansOf(t, j, "lookout")
		for _, s := range spans {
			if s.OperationName == "check web" && testpeer.Tag(s.Tags, "container.name") == svc {
				return true
			}
		}
		return false
	})

	// The proxy is restrictive: writes and reads the agent never makes are refused.
	id := docker(t, "inspect", "-f", "{{.Id}}", svc)
	base := fmt.Sprintf("http://127.0.0.1:%d", proxy.Port)
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1.41/containers/" + id + "/stop"}, {"POST", "/containers/" + id + "/kill"},
		{"DELETE", "/containers/" + id}, {"POST", "/containers/create"}, {"GET", "/containers/" + id + "/archive?path=/"},
		{"GET", "/containers/" + id + "/export"}, {"GET", "/images/json"}, {"GET", "/secrets"},
		{"GET", "/containers/x%2F..%2F" + id + "/export"}, {"POST", "/containers/" + id + "/exec"},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s through the proxy: %d, want 403", c.method, c.path, resp.StatusCode)
		}
	}
	waitInspect(t, 5*time.Second, svc, "{{.State.Running}}", "true")

	// Of what the agent asked, only exec was refused, once a run (every second), not in a
	// storm.
	got := refused(t, proxy)
	if n, most := got["POST /containers/ID/exec"], int(time.Since(started).Seconds())+5; n < 2 || n > most {
		t.Errorf("%d exec creations refused in %s: want the agent's runs (one a second) and the test's one", n, time.Since(started))
	}
	delete(got, "POST /containers/ID/exec")
	for _, want := range []string{"POST /containers/ID/stop", "POST /containers/ID/kill", "DELETE /containers/ID",
		"POST /containers/ID" /* create */, "GET /containers/ID/archive", "GET /containers/ID/export", "GET /images/json", "GET /secrets"} {
		delete(got, want)
	}
	if len(got) > 0 {
		t.Errorf("the proxy refused requests of the agent other than exec: %v", got)
	}

	// With exec let through (the proxy restarted with EXEC=1 where the agent expects it),
	// the exec check passes: the agent's exec start is a plain POST the proxy passes on.
	proxy.Stop()
	startSocketProxy(t, dir, true, fmt.Sprintf("127.0.0.1:%d", proxy.Port))
	restarted := time.Now()
	eventually(t, 60*time.Second, "the exec check passing through the proxy with EXEC=1", func() bool {
		r := lastCheck(t, db, svc, "cli")
		return r.Str("result") == "success" && r.Int("exit_code") == 0 && r.Int("time") > restarted.UnixNano()
	})
	waitCheck(t, db, svc, "web", "success", "")
	if strings.Contains(a.logs(), "panic") {
		t.Errorf("the agent panicked:\n%s", a.logs())
	}
}
