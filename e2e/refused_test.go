package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRefusedTargets: a container's labels try to send the agent to loopback (by name and
// in every notation), the unspecified address, cloud metadata, the node's own address and,
// by a redirect, to another host. An allowlist naming those addresses is refused when the
// agent starts, each entry by name; the allowlist names localhost, which is judged by
// what it resolves to. Each check is refused with its reason in its lookout_check point,
// in the agent's log with the container, and in lookout probe and lookout check, while a
// legitimate check of the same container passes and a redirect on the container's own
// address is followed.
func TestRefusedTargets(t *testing.T) {
	node := nodeAddress(t)
	never := []string{"::1", "0.0.0.0", "2130706433", "0177.0.0.1", "0x7f.1", "::ffff:127.0.0.1",
		"169.254.169.254", "metadata.google.internal", node}
	out, err := agentCommand([]string{"LOOKOUT_PROBE_ALLOWED_HOSTS=" + strings.Join(append([]string{"localhost", "10.9.8.7"}, never...), ",")},
		"check").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("lookout check with an allowlist of addresses never probed: %v, want exit 2 (bad configuration)\n%s", err, out)
	}
	for _, h := range never {
		if !lineWith(string(out), fmt.Sprintf("probe_allowed_hosts: %q can never be probed: ", h), "; remove it") {
			t.Errorf("lookout check: no line refusing the allowlist entry %q:\n%s", h, out)
		}
	}
	if strings.Contains(string(out), `"localhost" can never`) || strings.Contains(string(out), `"10.9.8.7" can never`) {
		t.Errorf("lookout check refused localhost or 10.9.8.7, which the allowlist may name:\n%s", out)
	}
	env := []string{"LOOKOUT_PROBE_ALLOWED_HOSTS=localhost"}
	db := dbName(t)
	a := startAgent(t, append(influxEnv(db), env...)...)
	name := "lk-refused-" + runID
	refused := []struct{ check, target, reason string }{
		{"byname", "http://localhost:8080/health", `refused: host "localhost" resolves to `},
		{"v6loop", "http://[::1]:8080/health", `refused: host "::1" is a loopback address`},
		{"anyaddr", "http://0.0.0.0:8080/health", `refused: host "0.0.0.0" is the unspecified address`},
		{"decimal", "http://2130706433:8080/health", `refused: host "2130706433" is the IPv4 address 127.0.0.1 in another notation, a loopback address`},
		{"octal", "http://0177.0.0.1:8080/health", `refused: host "0177.0.0.1" is the IPv4 address 127.0.0.1 in another notation`},
		{"hex", "tcp://0x7f.1:9000", `refused: host "0x7f.1" is the IPv4 address 127.0.0.1 in another notation`},
		{"mapped", "http://[::ffff:127.0.0.1]:8080/health", `refused: host "::ffff:127.0.0.1" is a loopback address`},
		{"meta", "http://169.254.169.254/latest/meta-data/", `refused: host "169.254.169.254" is a cloud metadata address`},
		{"gmeta", "http://metadata.google.internal/computeMetadata/v1/", `refused: host "metadata.google.internal" is a cloud metadata service`},
		{"node", "tcp://" + net.JoinHostPort(node, "22"), `refused: host "` + node + `" is an address of the node itself`},
		{"hop", "http://:8080/redirect?to=http://169.254.169.254/latest/", "refused: redirect to another host not followed: http://169.254.169.254/latest/"},
	}
	args := []string{"--label", "lookout.enable=true",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.samehop=http://:8080/redirect?to=/health", "--label", "lookout.check.samehop.interval=1s",
		"--label", "lookout.check.samehop.follow_redirects=true", "--label", "lookout.check.samehop.body=^ok",
		"--label", "lookout.check.hop.follow_redirects=true",
	}
	for _, r := range refused {
		args = append(args, "--label", "lookout.check."+r.check+"="+r.target, "--label", "lookout.check."+r.check+".interval=1s")
	}
	runContainer(t, name, args...)

	waitCheck(t, db, name, "web", "success", "")
	waitCheck(t, db, name, "samehop", "success", "")
	for _, r := range refused {
		result := "error"
		if r.check == "hop" {
			result = "failure" // the container answered, with a redirect that is not followed
		}
		p := waitCheck(t, db, name, r.check, result, r.reason)
		if r.check == "byname" && !strings.Contains(p.Str("reason"), "a loopback address") {
			t.Errorf("localhost: reason %q does not say loopback", p.Str("reason"))
		}
	}

	// The agent's log: one warning for each refused check, with the container and the reason.
	eventually(t, 10*time.Second, "a warning for each refused check", func() bool {
		logged := map[string]string{}
		for _, line := range strings.Split(a.logs(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "check refused" && e["container"] == name && e["level"] == "warning" {
				logged[e["check"].(string)], _ = e["reason"].(string)
			}
		}
		for _, r := range refused {
			if !strings.Contains(logged[r.check], r.reason) {
				return false
			}
		}
		return len(logged) == len(refused) // and none for web or samehop
	})

	// lookout probe and lookout check, with the agent's configuration.
	out, err = agentCommand(env, "probe", name).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("lookout probe: %v, want exit 1\n%s", err, out)
	}
	for _, r := range refused {
		if !lineWith(string(out), r.check+" ", r.reason) {
			t.Errorf("lookout probe: no line for %s with %q:\n%s", r.check, r.reason, out)
		}
	}
	if !lineWith(string(out), "web ", "success") || !lineWith(string(out), "samehop ", "success") {
		t.Errorf("lookout probe: web and samehop do not pass:\n%s", out)
	}
	t.Logf("lookout probe:\n%s", out)
	out, err = agentCommand(env, "check").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("lookout check: %v, want exit 1\n%s", err, out)
	}
	for _, r := range refused {
		if r.check == "hop" {
			continue // a redirect is known only when the check runs
		}
		if want := "check " + r.check + ": " + r.reason; !lineWith(string(out), name, want) {
			t.Errorf("lookout check: no %q on %s's line:\n%s", want, name, out)
		}
	}
	if lineWith(string(out), name, "check web:") {
		t.Errorf("lookout check reports the legitimate check:\n%s", out)
	}
}

// nodeAddress is an address of this machine that is neither loopback nor link-local: the
// node's own, to the agent running here.
func nodeAddress(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr().String()
		}
	}
	t.Fatal("no address of this machine other than loopback and link-local")
	return ""
}

// lineWith says whether a line of out contains every one of want.
func lineWith(out string, want ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if containsAll(line, want...) {
			return true
		}
	}
	return false
}

// containsAll says whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestCheckOverANetworkTheAgentIsNotOn: lookout probe and lookout check run in a container
// on one network; a check naming the target's address on another network is refused,
// the one naming the shared network goes to the target's address there. (Whether it
// passes is the engine's business: on the Docker 29 of make test, run without iptables
// rules beside the system daemon, traffic between two containers of a bridge network is
// dropped by the system daemon's FORWARD rules, and the check times out.)
func TestCheckOverANetworkTheAgentIsNotOn(t *testing.T) {
	front, back := "lk-front-"+runID, "lk-back-"+runID
	for _, n := range []string{front, back} {
		docker(t, "network", "create", "--label", "lookout-test.run="+runID, n)
		t.Cleanup(func() { _, _ = exec.Command("docker", "network", "rm", n).CombinedOutput() })
	}
	name := "lk-nets-" + runID
	runContainer(t, name, "--network", front,
		"--label", "lookout.enable=true",
		"--label", "lookout.check.viafront=http://:8080/health", "--label", "lookout.check.viafront.network="+front,
		"--label", "lookout.check.viafront.timeout=1s",
		"--label", "lookout.check.viaback=http://:8080/health", "--label", "lookout.check.viaback.network="+back,
	)
	docker(t, "network", "connect", back, name)
	frontIP := docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+front+`").IPAddress}}`, name)
	want := `refused: network "` + back + `" is not one the agent's container is on (` + front + `)`

	// The static agent, in a container of the test image on the front network only.
	inContainer := func(args ...string) (string, error) {
		a := append([]string{"run", "--rm", "--label", "lookout-test.run=" + runID, "--network", front,
			"-v", staticBin + ":/lookout:ro", "-v", agentSocket() + ":/var/run/docker.sock",
			"-e", "LOOKOUT_DOCKER_HOST=unix:///var/run/docker.sock", "--entrypoint", "/lookout", testImage}, args...)
		out, err := exec.Command("docker", a...).CombinedOutput()
		return string(out), err
	}
	out, err := inContainer("probe", name)
	if !lineWith(out, "viaback ", want) || !lineWith(out, "viafront ", frontIP+":8080") || lineWith(out, "viafront ", "refused") {
		t.Errorf("lookout probe in a container on %s (err %v): want viaback refused, viafront run against %s:\n%s", front, err, frontIP, out)
	}
	t.Logf("lookout probe:\n%s", out)
	out, err = inContainer("check")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !lineWith(out, name, "check viaback: "+want) || lineWith(out, name, "check viafront:") {
		t.Errorf("lookout check in a container on %s: %v, want exit 1 and viaback refused only:\n%s", front, err, out)
	}
}
