package resources

import (
	"context"

	"github.com/influxdata/telegraf"
)

var _ telegraf.Input = (*Collector)(nil)

// SampleConfig implements telegraf.Input. The collector is configured by Lookout's own
// settings (see the README), not by TOML.
func (*Collector) SampleConfig() string {
	return `# Container resource use as inputs.docker reports it, read by Lookout
# (LOOKOUT_RESOURCES=auto|cgroup|api, LOOKOUT_RESOURCES_PER_DEVICE)
`
}

// Gather implements telegraf.Input: one gather into acc. Containers that cannot be read
// are counted in lookout_resources and skipped, as Collect does.
func (c *Collector) Gather(acc telegraf.Accumulator) error {
	for _, p := range c.Collect(context.Background()) {
		acc.AddFields(p.Name, p.FieldMap(), p.TagMap(), p.Time)
	}
	return nil
}
