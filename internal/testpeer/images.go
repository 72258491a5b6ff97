package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// BuildStatic builds a Go package of the repository at root as a static binary at out.
func BuildStatic(root, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildRace builds a Go package of the repository at root with the race detector at out.
func BuildRace(root, pkg, out string) error {
	cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -race %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildTestImage builds the test service (testdata/testsvc) FROM scratch as image tag.
func BuildTestImage(root, tag string) error { return BuildImage(root, "testsvc", tag) }

// BuildImage builds testdata/<name> (a Go program and its Dockerfile) FROM scratch as tag.
func BuildImage(root, name, tag string) error {
	dir, err := os.MkdirTemp("", "lookout-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := BuildStatic(root, "./testdata/"+name, filepath.Join(dir, name)); err != nil {
		return err
	}
	df, err := os.ReadFile(filepath.Join(root, "testdata", name, "Dockerfile"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", tag, err, out)
	}
	return nil
}

// RemoveContainers removes every container labelled lookout-test.run=<run> (every test
// and benchmark container carries the label), 50 to a docker call.
func RemoveContainers(run string) {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=lookout-test.run="+run).Output()
	ids := strings.Fields(string(out))
	for i := 0; i < len(ids); i += 50 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids[i:min(i+50, len(ids))]...)...).Run()
	}
}

// RemoveOnSignal removes the containers of run (RemoveContainers) and exits when the
// program gets SIGINT or SIGTERM, so that an interrupted benchmark leaves no opted-in
// containers behind for later agents to monitor.
func RemoveOnSignal(run string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "%v: removing the containers of %s\n", s, run)
		RemoveContainers(run)
		os.Exit(130)
	}()
}
