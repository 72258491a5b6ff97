package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
)

// BenchImage is the test service image the benchmarks build and run.
const BenchImage = "lookout-testsvc:bench"

// Workbench is what a benchmark starts from: a temporary work directory, the test service
// image built from the checkout in the current directory, and, when asked, an InfluxDB of
// its own with its data under the work directory.
type Workbench struct {
	Work   string
	Image  string
	Influx *Influx // nil unless asked for
	Keep   bool    // Close leaves the work directory and says where it is
}

// NewWorkbench makes the work directory (named after prefix), builds BenchImage and, with
// influx, starts an InfluxDB. On error nothing is left behind.
func NewWorkbench(prefix string, influx bool) (*Workbench, error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	w := &Workbench{Work: work, Image: BenchImage}
	if err := BuildTestImage(root, w.Image); err != nil {
		w.Close()
		return nil, err
	}
	if influx {
		if w.Influx, err = StartInflux(filepath.Join(work, "influx")); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Close stops the InfluxDB and removes the work directory (or, with Keep, names it).
func (w *Workbench) Close() {
	if w.Influx != nil {
		w.Influx.Stop()
	}
	if w.Keep {
		fmt.Fprintln(os.Stderr, "work directory:", w.Work)
		return
	}
	_ = os.RemoveAll(w.Work)
}
