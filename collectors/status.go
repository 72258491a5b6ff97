package collectors

import (
	"sort"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
)

// Status reports docker_container_status, and docker_container_health for containers with
// a HEALTHCHECK, of every monitored container as the inventory last saw it, on demand: it
// is the telegraf.Input that `lookout execd` gathers on each line of its standard input.
// The running agent reports the same points from the inventory's changes (Health).
type Status struct {
	inv inventory.View
}

// NewStatus returns an input reading inv.
func NewStatus(inv inventory.View) *Status { return &Status{inv: inv} }

var _ telegraf.Input = (*Status)(nil)

// Collect returns the points for now, containers in name order.
func (s *Status) Collect(now time.Time) []metric.Point {
	engine := s.inv.Engine()
	list := s.inv.Snapshot()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	var out []metric.Point
	for i := range list {
		c := &list[i]
		if !c.Monitored {
			continue
		}
		tags := c.Tags(engine)
		out = append(out, statusPoint(c, tags, now))
		if p, ok := healthPoint(c, tags, now, "", ""); ok {
			out = append(out, p)
		}
	}
	return out
}

// SampleConfig implements telegraf.Input.
func (*Status) SampleConfig() string {
	return "# Container status and health as inputs.docker reports them, read by Lookout\n"
}

// Gather implements telegraf.Input.
func (s *Status) Gather(acc telegraf.Accumulator) error {
	for _, p := range s.Collect(time.Now()) {
		acc.AddFields(p.Name, p.FieldMap(), p.TagMap(), p.Time)
	}
	return nil
}
