package resources

import (
	"context"
	"fmt"

	"github.com/influxdata/telegraf"
)

var _ telegraf.Input = (*Collector)(nil)

// SampleConfig implements telegraf.Input. The collector is configured by Lookout's own
// settings (see docs/configuration.md), not by TOML.
func (*Collector) SampleConfig() string {
	return `# Container resource use as inputs.docker reports it, read by Lookout
# (LOOKOUT_RESOURCES=auto|cgroup|api, LOOKOUT_RESOURCES_PER_DEVICE)
`
}

// Gather implements telegraf.Input: one gather into acc. Containers that cannot be read
// are skipped, as Collect does; under Telegraf, where lookout_resources is not shipped,
// the gather says how many in its error, which Telegraf logs.
func (c *Collector) Gather(acc telegraf.Accumulator) error {
	before := c.errs.Load()
	for _, p := range c.Collect(context.Background()) {
		acc.AddFields(p.Name, p.FieldMap(), p.TagMap(), p.Time)
	}
	if n := c.errs.Load() - before; n > 0 {
		return fmt.Errorf("resources: %d read(s) failed in this gather (the Docker info or a container's use); the rest was gathered", n)
	}
	return nil
}
