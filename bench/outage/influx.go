package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// influx queries the benchmark's InfluxDB over HTTP. Unlike testpeer.Influx.Query it
// streams chunked responses (the outage window holds millions of points) and has a short
// timeout, so that a sampler keeps its one-second pace while the database is down.
type influx struct {
	url string
	hc  *http.Client
}

func newInflux(u string, timeout time.Duration) *influx {
	return &influx{url: u, hc: &http.Client{Timeout: timeout}}
}

type series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// stream runs q against db (times as epoch nanoseconds, chunked) and calls fn for every
// series chunk. A missing database gives nothing.
func (c *influx) stream(db, q string, fn func(s series)) error {
	v := url.Values{"db": {db}, "q": {q}, "epoch": {"ns"}, "chunked": {"true"}, "chunk_size": {"20000"}}
	resp, err := c.hc.Get(c.url + "/query?" + v.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("query %q: %s: %s", q, resp.Status, b)
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var out struct {
			Error   string
			Results []struct {
				Error  string
				Series []series
			}
		}
		if err := dec.Decode(&out); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("query %q: %w", q, err)
		}
		if out.Error != "" {
			return fmt.Errorf("query %q: %s", q, out.Error)
		}
		for _, r := range out.Results {
			if r.Error != "" {
				if strings.Contains(r.Error, "database not found") {
					continue
				}
				return fmt.Errorf("query %q: %s", q, r.Error)
			}
			for _, s := range r.Series {
				fn(s)
			}
		}
	}
}

// scalar returns the first value of column col of q's first row; ok is false when there
// is no row.
func (c *influx) scalar(db, q, col string) (int64, bool, error) {
	var v int64
	found := false
	err := c.stream(db, q, func(s series) {
		if found || len(s.Values) == 0 {
			return
		}
		for i, name := range s.Columns {
			if name == col {
				v, found = num(s.Values[0][i]), true
			}
		}
	})
	return v, found, err
}

func num(x any) int64 {
	n, ok := x.(json.Number)
	if !ok {
		return 0
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return int64(f)
}

// seriesKey is the measurement and its sorted tags: one series of InfluxDB.
func seriesKey(name string, tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		b.WriteString(",")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(tags[k])
	}
	return b.String()
}

// measurements lists db's measurements.
func (c *influx) measurements(db string) ([]string, error) {
	var out []string
	err := c.stream(db, "SHOW MEASUREMENTS", func(s series) {
		for _, v := range s.Values {
			if len(v) > 0 {
				out = append(out, fmt.Sprint(v[0]))
			}
		}
	})
	return out, err
}

// densestField is the field of measurement m with the most values in [from, to): the one
// field whose timestamps stand for the measurement's points.
func (c *influx) densestField(db, m string, from, to time.Time) (string, error) {
	best, bestN := "", int64(-1)
	err := c.stream(db, fmt.Sprintf(`SELECT count(*) FROM %q WHERE time >= %d AND time < %d`, m, from.UnixNano(), to.UnixNano()),
		func(s series) {
			if len(s.Values) == 0 {
				return
			}
			for i, col := range s.Columns {
				if f, ok := strings.CutPrefix(col, "count_"); ok {
					if n := num(s.Values[0][i]); n > bestN {
						best, bestN = f, n
					}
				}
			}
		})
	return best, err
}
