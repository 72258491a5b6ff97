// Package testpeer starts the real peers that end-to-end tests and benchmarks talk to:
// an InfluxDB 1.x on a free loopback port, and the test service image. It is not used by
// the agent itself.
package testpeer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Influx is an influxd process with its data in Dir, listening on 127.0.0.1:Port.
type Influx struct {
	Dir  string
	Port int
	URL  string
	proc *process
}

// StartInflux runs influxd (from the Debian package influxdb) with data in dir.
func StartInflux(dir string) (*Influx, error) {
	if _, err := exec.LookPath("influxd"); err != nil {
		return nil, fmt.Errorf("influxd not found: run `make peers` (installs the Debian package influxdb)")
	}
	port := FreePort()
	i := &Influx{Dir: dir, Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	return i, i.Start()
}

// Start starts (or restarts) influxd on the same port and data.
func (i *Influx) Start() error {
	_ = os.MkdirAll(i.Dir, 0o755)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`, FreePort(), i.Dir, i.Dir, i.Dir, i.Port)
	cf := filepath.Join(i.Dir, "influxdb.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	ping := &http.Client{Timeout: 2 * time.Second}
	ready := func() bool {
		resp, err := ping.Get(i.URL + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}
	var err error
	i.proc, err = startProcess("influxd", filepath.Join(i.Dir, "influxd.log"), nil, ready, 30*time.Second,
		"influxd", "-config", cf)
	return err
}

// Stop stops influxd and waits for it.
func (i *Influx) Stop() {
	i.proc.stop(10 * time.Second)
	i.proc = nil
}

// Row is one result row: column (or series tag) name -> value; numbers are json.Number.
type Row map[string]any

// Str returns a column as text, "" when absent.
func (r Row) Str(k string) string {
	if v, ok := r[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// Int returns a numeric column, -1 when absent.
func (r Row) Int(k string) int64 {
	if n, ok := r[k].(json.Number); ok {
		if v, err := n.Int64(); err == nil {
			return v
		}
		if f, err := n.Float64(); err == nil {
			return int64(f)
		}
	}
	return -1
}

// Query runs InfluxQL against db (times as epoch nanoseconds) and returns the rows of
// every series, each with the series name as "_measurement" and its tags merged in. A
// missing database gives no rows.
func (i *Influx) Query(db, q string) ([]Row, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(i.URL + "/query?" + url.Values{"db": {db}, "q": {q}, "epoch": {"ns"}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Error   string
		Results []struct {
			Error  string
			Series []struct {
				Name    string
				Tags    map[string]string
				Columns []string
				Values  [][]any
			}
		}
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("query %q: %s", q, out.Error)
	}
	var rows []Row
	for _, r := range out.Results {
		if r.Error != "" {
			if strings.Contains(r.Error, "database not found") {
				continue
			}
			return nil, fmt.Errorf("query %q: %s", q, r.Error)
		}
		for _, s := range r.Series {
			for _, v := range s.Values {
				rw := Row{"_measurement": s.Name}
				for k, tv := range s.Tags {
					rw[k] = tv
				}
				for c, col := range s.Columns {
					rw[col] = v[c]
				}
				rows = append(rows, rw)
			}
		}
	}
	return rows, nil
}
