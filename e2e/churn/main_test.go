// Package churn runs the agent, every feature on, through 1,000 container lifecycles
// (create, start, health flip, log burst, span, stop, remove; -cycles or
// LOOKOUT_CHURN_CYCLES for fewer) and checks that what it holds (goroutines, open files,
// live heap, the series it reports, its per-container state) comes back to where it was.
// `make churn` runs it (CI after `make cluster`; `make test` leaves it out). `go test
// -short` skips it. docs/operations.md#testing says what it checks and its margins.
package churn

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

var (
	cycles   = flag.Int("cycles", envInt("LOOKOUT_CHURN_CYCLES", 1000), "container lifecycles (LOOKOUT_CHURN_CYCLES)")
	parallel = flag.Int("parallel", envInt("LOOKOUT_CHURN_PARALLEL", 12), "lifecycles at a time (LOOKOUT_CHURN_PARALLEL)")
	// The race detector makes the agent several times slower and its heap larger; `make
	// test` runs the race agent through every feature, the churn counts what it holds.
	raceAgent = flag.Bool("agent-race", os.Getenv("LOOKOUT_CHURN_AGENT_RACE") == "1", "run the agent built with -race (LOOKOUT_CHURN_AGENT_RACE=1)")

	root      string
	agentBin  string // the agent, static or built with -race (-agent-race)
	testImage = "lookout-testsvc:churn"
	runID     = fmt.Sprintf("lkch%d", time.Now().UnixNano()%1e6)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("churn: skipped (-short)")
		os.Exit(0)
	}
	testpeer.RemoveOnSignal(runID)
	dir, err := os.MkdirTemp("", "lookout-churn-")
	if err == nil {
		err = setup(dir)
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "churn setup:", err)
	} else {
		code = m.Run()
	}
	testpeer.RemoveContainers(runID)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	root, _ = filepath.Abs("../..")
	build := testpeer.BuildStatic
	if *raceAgent {
		build = testpeer.BuildRace
	}
	agentBin = filepath.Join(dir, "lookout")
	if err := build(root, "./cmd/agent", agentBin); err != nil {
		return err
	}
	return testpeer.BuildTestImage(root, testImage)
}
