package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The engine under test is the one DOCKER_HOST names (make test's second pass and
// `make bench-… ENGINE=29` point it at scripts/engine29.sh's Docker 29), else the system's.
// The docker commands, the Docker client and the agents follow DOCKER_HOST by themselves;
// what does not (Telegraf's endpoint, the daemons whose CPU a bench reads) asks here.

// EngineHost is the address of the engine under test: DOCKER_HOST, else the default socket.
func EngineHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///var/run/docker.sock"
}

// EngineSocket is the unix socket of the engine under test: DOCKER_HOST's when it names
// one, else /var/run/docker.sock.
func EngineSocket() string {
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		return strings.TrimPrefix(h, "unix://")
	}
	return "/var/run/docker.sock"
}

// EngineVersion is what the engine under test says it is, e.g. "29.0.0 (API 1.52)".
func EngineVersion() string {
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").Output()
	if err != nil {
		return "unknown (docker version: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// EngineProcs are the host processes that serve the engine under test: its dockerd, the
// containerd it runs containers through and the shims of its running containers. They
// are found by what they serve, not by name: Docker 29 beside 20.10 shares the system's
// containerd, and Docker nodes running as containers (issue 12's swarm bed) have
// processes named dockerd and containerd of their own.
type EngineProcs struct {
	Dockerd    int   // the process listening on the engine's socket
	Containerd int   // the process listening on the socket its shims name (-address)
	Shims      []int // the parents of its running containers' main processes
}

// FindEngineProcs finds the processes of the engine under test (a unix socket on this
// host); Containerd and Shims are found through the engine's running containers, so
// Containerd is 0 when it runs none.
func FindEngineProcs() (*EngineProcs, error) {
	dockerd, err := EngineDockerd()
	if err != nil {
		return nil, err
	}
	e := &EngineProcs{Dockerd: dockerd}
	out, err := exec.Command("docker", "ps", "-q", "--no-trunc").Output()
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	ids := strings.Fields(string(out))
	seen := map[int]bool{}
	for i := 0; i < len(ids); i += 100 {
		args := append([]string{"inspect", "--format", "{{.State.Pid}}"}, ids[i:min(i+100, len(ids))]...)
		out, err := exec.Command("docker", args...).Output()
		if err != nil {
			continue // a container went away meanwhile: the others still count
		}
		for _, f := range strings.Fields(string(out)) {
			pid, _ := strconv.Atoi(f)
			if shim := ParentPid(pid); shim > 1 && !seen[shim] {
				seen[shim] = true
				e.Shims = append(e.Shims, shim)
			}
		}
	}
	if len(e.Shims) > 0 {
		addr := flagValue(e.Shims[0], "-address")
		if addr == "" {
			return nil, fmt.Errorf("shim %d names no containerd -address", e.Shims[0])
		}
		if e.Containerd, err = socketListener(addr, "containerd"); err != nil {
			return nil, fmt.Errorf("the engine's containerd: %w", err)
		}
	}
	return e, nil
}

// EngineDockerd is the dockerd of the engine under test: the process listening on its socket.
func EngineDockerd() (int, error) {
	pid, err := socketListener(EngineSocket(), "dockerd")
	if err != nil {
		return 0, fmt.Errorf("the engine's dockerd (DOCKER_HOST %s): %w", EngineHost(), err)
	}
	return pid, nil
}

// ParentPid is a process's parent's ID from /proc/<pid>/stat, 0 if it is gone.
func ParentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// flagValue is the value of a flag ("-address VALUE" or "-address=VALUE") in a process's
// command line, "" if it has none.
func flagValue(pid int, flag string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// socketListener is the process whose command name contains comm and that holds the
// listening unix socket bound at path (in this network namespace). A supervisor that
// holds it too (systemd's socket activation) is passed over by its name.
func socketListener(path, comm string) (int, error) {
	want := resolved(path)
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening.
		fl := strings.Fields(sc.Text())
		if len(fl) == 8 && fl[3] == "00010000" && resolved(fl[7]) == want {
			inodes["socket:["+fl[6]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on %s", path)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	var holders []string
	found := 0
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err != nil || !inodes[l] {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		name, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		n := strings.TrimSpace(string(name))
		holders = append(holders, fmt.Sprintf("%d (%s)", pid, n))
		if strings.Contains(n, comm) && pid != found {
			if found != 0 {
				return 0, fmt.Errorf("two %s processes listen on %s: %d and %d", comm, path, found, pid)
			}
			found = pid
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("no process named %s listens on %s (held by: %s)", comm, path, strings.Join(holders, ", "))
	}
	return found, nil
}

// resolved is path with its symbolic links resolved (/var/run is /run), or path itself.
func resolved(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return filepath.Clean(path)
}

// BridgeGateway is the address of the host on the default bridge of the engine under
// test: the address its containers reach the host at, and nothing else does.
func BridgeGateway() (string, error) {
	inspect := func(format string) (string, error) {
		out, err := exec.Command("docker", "network", "inspect", "bridge", "-f", format).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("docker network inspect bridge: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if gw, err := inspect("{{range .IPAM.Config}}{{.Gateway}}{{end}}"); err != nil || gw != "" {
		return gw, err
	}
	// Docker 20.10 leaves the default bridge's gateway out of IPAM: it is the bridge
	// interface's own address.
	name, err := inspect(`{{index .Options "com.docker.network.bridge.name"}}`)
	if err != nil {
		return "", err
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("the default bridge's interface %q: %w", name, err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no IPv4 address on %s", name)
}
