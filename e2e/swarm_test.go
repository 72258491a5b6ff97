package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

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

// TestGlobalStackOnSwarm deploys deploy/global-stack.yml with a locally built image on a
// single-node swarm and finds the agent's report of a monitored service in its logs. The
// service's task is re-created: its container_name tag must stay the same.
func TestGlobalStackOnSwarm(t *testing.T) {
	ensureSwarm(t)
	// The image, from the static binary, with the repository's Dockerfile.
	ctx := t.TempDir()
	_ = os.MkdirAll(filepath.Join(ctx, "bin"), 0o755)
	bin, _ := os.ReadFile(staticBin)
	if err := os.WriteFile(filepath.Join(ctx, "bin", "lookout"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	df, _ := os.ReadFile("../Dockerfile")
	_ = os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644)
	image := "lookout:e2e-" + runID
	docker(t, "build", "-q", "-t", image, ctx)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	stack := "lk" + runID
	web := "lkweb" + runID
	t.Cleanup(func() {
		_ = exec.Command("docker", "service", "rm", web).Run()
		_ = exec.Command("docker", "stack", "rm", stack).Run()
		// Wait for the tasks' containers to go before the swarm is left.
		for i := 0; i < 50; i++ {
			out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.stack.namespace="+stack).Output()
			out2, _ := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+web).Output()
			if len(strings.TrimSpace(string(out)+string(out2))) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	deploy := exec.Command("docker", "stack", "deploy", "-c", "../deploy/global-stack.yml", stack)
	deploy.Env = append(os.Environ(), "LOOKOUT_IMAGE="+image, "LOOKOUT_INTERVAL=1s")
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("docker stack deploy: %v\n%s", err, out)
	}
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
