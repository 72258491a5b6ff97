package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// dockerOut runs the docker CLI for at most 30 s and returns its output, "" on an error:
// for polling, where a slow engine (docker service logs of a busy agent) must not hang
// the test.
func dockerOut(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out)
}

// ensureSwarm makes this engine a single-node swarm for the test, and leaves it at the
// end unless it was one before.
func ensureSwarm(t *testing.T) {
	t.Helper()
	state := docker(t, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if state != "active" {
		out, err := exec.Command("docker", "swarm", "init", "--advertise-addr", "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("this engine cannot run a single-node swarm: docker swarm init: %v\n%s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("docker", "swarm", "leave", "--force").Run() })
	}
	// The engine makes docker_gwbridge a moment after the init (one run found it missing
	// right after): wait for it, and make it as Docker documents if it never comes.
	gwbridge := func() bool { return exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() == nil }
	for deadline := time.Now().Add(15 * time.Second); !gwbridge() && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
	}
	if !gwbridge() {
		docker(t, "network", "create", "--driver", "bridge", "-o", "com.docker.network.bridge.name=docker_gwbridge",
			"-o", "com.docker.network.bridge.enable_icc=false", "-o", "com.docker.network.bridge.enable_ip_masquerade=true",
			"docker_gwbridge")
	}
}

// removeService removes a Swarm service and waits for its containers to go.
func removeService(name string) {
	_ = exec.Command("docker", "service", "rm", name).Run()
	for i := 0; i < 50; i++ {
		out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+name).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deployStack builds the agent's image from the repository's Dockerfile and deploys
// deploy/global-stack.yml on this swarm as stack, with env added to the environment (the
// stack file's ${...} settings). Cleanup removes the stack, waits for its containers to go
// and removes its state volume, so that a rerun starts clean.
func deployStack(t *testing.T, stack string, env ...string) {
	t.Helper()
	ctx := t.TempDir()
	_ = os.MkdirAll(filepath.Join(ctx, "bin"), 0o755)
	bin, _ := os.ReadFile(staticBin)
	if err := os.WriteFile(filepath.Join(ctx, "bin", "lookout"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	df, _ := os.ReadFile("../Dockerfile")
	_ = os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644)
	image := "lookout:e2e-" + stack
	docker(t, "build", "-q", "-t", image, ctx)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	t.Cleanup(func() {
		if t.Failed() {
			// The agent's tasks, and its warnings and errors (not its line protocol).
			ps := dockerOut("service", "ps", "--no-trunc", stack+"_agent")
			var msgs []string
			for _, l := range strings.Split(dockerOut("service", "logs", "--raw", "--tail", "5000", stack+"_agent"), "\n") {
				for _, lvl := range []string{"level=warn", "level=error", "level=fatal", `"level":"warn`, `"level":"error`, `"level":"fatal`} {
					if strings.Contains(l, lvl) {
						msgs = append(msgs, l)
						break
					}
				}
			}
			t.Logf("the agent's tasks:\n%s\nits last warnings and errors:\n%s", ps, strings.Join(msgs[max(0, len(msgs)-30):], "\n"))
		}
		_ = exec.Command("docker", "stack", "rm", stack).Run()
		// The volume can go once no container (running or not) uses it.
		vol := stack + "_lookout-state"
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if strings.TrimSpace(dockerOut("ps", "-aq", "--filter", "label=com.docker.stack.namespace="+stack)) == "" {
				out := dockerOut("volume", "rm", vol)
				if strings.TrimSpace(out) == vol || strings.Contains(strings.ToLower(out), "no such volume") {
					return
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("the stack's containers or its volume %s are still there 2 minutes after docker stack rm", vol)
	})
	deploy := exec.Command("docker", "stack", "deploy", "-c", "../deploy/global-stack.yml", stack)
	// The agent's group: the engine's socket's, as the stack's comment tells a user.
	var st syscall.Stat_t
	if err := syscall.Stat(testpeer.EngineSocket(), &st); err != nil {
		t.Fatal(err)
	}
	deploy.Env = append(append(os.Environ(), "LOOKOUT_IMAGE="+image, fmt.Sprintf("LOOKOUT_DOCKER_GID=%d", st.Gid)), env...)
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("docker stack deploy: %v\n%s", err, out)
	}
}

// TestGlobalStackOnSwarm deploys deploy/global-stack.yml with a locally built image on a
// single-node swarm and finds the agent's report of a monitored service in its logs. The
// service's task is re-created: its container_name tag must stay the same.
func TestGlobalStackOnSwarm(t *testing.T) {
	ensureSwarm(t)
	stack := "lk" + runID
	web := "lkweb" + runID
	deployStack(t, stack, "LOOKOUT_INTERVAL=1s")
	// The service on an overlay network of its own, which the agent (on the host network)
	// does not share: its check goes to the task's docker_gwbridge address.
	netName := "lkwebnet" + runID
	docker(t, "network", "create", "-d", "overlay", "--label", "lookout-test.run="+runID, netName)
	t.Cleanup(func() { removeService(web); _ = exec.Command("docker", "network", "rm", netName).Run() })
	docker(t, "service", "create", "--detach", "--name", web, "--label", "lookout-test.run="+runID,
		"--network", netName, "--container-label", "lookout.enable=true",
		"--container-label", "lookout.check.web=http://:8080/health", "--container-label", "lookout.check.web.interval=1s",
		"--container-label", "lookout-test.run="+runID, "--health-interval", "500ms", testImage)

	host := docker(t, "info", "--format", "{{.Name}}")
	line := regexp.MustCompile(`^docker_container_status,.*container_name=` + web + `\.1,.*node=` + regexp.QuoteMeta(host) +
		`,.*service=` + web + `,.*task_slot=1 .*task_id="([a-z0-9]+)"`)
	tasks := func() map[string]bool {
		out, _ := exec.Command("docker", "service", "logs", "--raw", stack+"_agent").Output()
		ids := map[string]bool{}
		for _, l := range strings.Split(string(out), "\n") {
			if m := line.FindStringSubmatch(l); m != nil {
				ids[m[1]] = true
			}
		}
		return ids
	}
	eventually(t, 90*time.Second, "the agent's report of the service's task", func() bool { return len(tasks()) >= 1 })
	eventually(t, 60*time.Second, "the agent's check of the task on its overlay network passing", func() bool {
		out, _ := exec.Command("docker", "service", "logs", "--raw", stack+"_agent").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "lookout_check,") && strings.Contains(l, ",check=web,") &&
				strings.Contains(l, ",container_name="+web+".1,") && strings.Contains(l, ",result=success") {
				return true
			}
		}
		return false
	})

	// Re-create the task: a new task ID, the same series.
	docker(t, "service", "update", "--detach", "--force", web)
	eventually(t, 90*time.Second, "the report of the re-created task under the same container_name", func() bool {
		return len(tasks()) >= 2
	})
	out, _ := exec.Command("docker", "service", "logs", "--raw", stack+"_agent").Output()
	names := regexp.MustCompile(`container_name=(`+web+`[^,]*),`).FindAllStringSubmatch(string(out), -1)
	for _, n := range names {
		if n[1] != web+".1" {
			t.Errorf("container_name %q: a task's series must not be named after its task", n[1])
		}
	}
}

// agentTask returns the ID of the stack's agent task that is running on this node, ""
// while none is (a re-created task is a new task, with a new container).
func agentTask(stack string) string {
	out := dockerOut("service", "ps", "--no-trunc", "--filter", "desired-state=running",
		"--format", "{{.ID}} {{.CurrentState}}", stack+"_agent")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] == "Running" {
			return f[0]
		}
	}
	return ""
}

// ackedLines returns the highest acknowledged line count (lookout_logs' lines field) the
// stack's agents have reported for container name.
func ackedLines(stack, name string) int {
	out := dockerOut("service", "logs", "--raw", stack+"_agent")
	re := regexp.MustCompile(`^lookout_logs,.*container_name=` + regexp.QuoteMeta(name) + `[, ].*[ ,]lines=(\d+)[iu]?[ ,]`)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			v, _ := strconv.Atoi(m[1])
			n = max(n, v)
		}
	}
	return n
}

// TestGlobalStackStateVolume deploys the global stack with logs to a real forward-protocol
// receiver and re-creates the agent's task (docker service update --force: a new
// container, as on every upgrade). The log positions are in the stack's volume: the new
// agent sends none of the lines the old one had delivered, and misses none written after.
// Without the volume the new agent reads every log from its start (LOOKOUT_FLUENTD_START's
// default) and the test fails with every line of the first run sent twice.
func TestGlobalStackStateVolume(t *testing.T) {
	const n = 100
	ensureSwarm(t)
	f := startFluentd(t)
	// A plain container, which keeps its ID and its log across a restart: each run
	// writes "v 1" to "v 100" and then idles.
	name := runID + "-stackvol"
	runLogContainer(t, name, []string{"--label", "lookout.enable=true"}, "seq", "v", fmt.Sprint(n), "5ms")

	stack := "lkv" + runID
	// The agent is on the host's network: the receiver's loopback address reaches it.
	deployStack(t, stack, "LOOKOUT_INTERVAL=1s", "LOOKOUT_FLUENTD_ADDRESS="+f.Addr)

	// A record is one line of one run: Docker's timestamp tells the runs apart.
	type key struct {
		ns   int64
		line string
	}
	tally := func() (distinct map[key]int, perLine map[string]int, total int) {
		distinct, perLine = map[key]int{}, map[string]int{}
		recs := recordsOf(t, f, name)
		for _, r := range recs {
			k := key{r.TimeNS, string(r.Log())}
			if distinct[k] == 0 {
				perLine[k.line]++
			}
			distinct[k]++
		}
		return distinct, perLine, len(recs)
	}
	eventually(t, 2*time.Minute, fmt.Sprintf("the first run's %d lines at the receiver", n), func() bool {
		d, _, _ := tally()
		return len(d) >= n
	})
	// Acknowledged too: the agent counts a batch when Fluentd acknowledges it, and saves
	// the position right then. Nothing is in flight, so nothing may be sent again.
	eventually(t, time.Minute, "the agent's lookout_logs counter of the acknowledged lines", func() bool {
		return ackedLines(stack, name) >= n
	})

	// The agent's task re-created: a new task and container, the same node.
	var old string
	eventually(t, time.Minute, "the agent's task running", func() bool { old = agentTask(stack); return old != "" })
	docker(t, "service", "update", "--detach", "--force", stack+"_agent")
	eventually(t, 2*time.Minute, "the re-created agent task running", func() bool {
		id := agentTask(stack)
		return id != "" && id != old
	})
	_, _, before := tally()

	// The container's second run: n more lines, which the new agent must deliver.
	docker(t, "restart", "-t", "1", name)
	eventually(t, 2*time.Minute, fmt.Sprintf("the second run's %d lines at the receiver", n), func() bool {
		d, _, _ := tally()
		return len(d) >= 2*n
	})
	distinct, perLine, total := tally()
	lost := 0
	for i := 1; i <= n; i++ {
		if c := perLine[fmt.Sprintf("v %d", i)]; c != 2 {
			t.Errorf("line v %d: %d run(s) of it arrived, want both", i, c)
			lost += max(2-c, 0)
		}
	}
	dups := total - len(distinct)
	t.Logf("%d records for %d lines over two runs: %d duplicates (%d records when the new agent started), %d lost",
		total, len(distinct), dups, before, lost)
	if dups > 0 {
		t.Errorf("%d lines already acknowledged were sent again after the agent's task was re-created"+
			" (the log positions did not survive it: is the state volume mounted?)", dups)
	}
	if len(distinct) != 2*n {
		t.Errorf("%d distinct lines, want %d", len(distinct), 2*n)
	}
}
