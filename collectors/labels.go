package collectors

import (
	"context"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
)

// LabelProblems reports each lookout.* label a monitored container has that Lookout cannot
// use, as a lookout_label_problem point (tag key; fields value and reason), every time the
// container is seen: a dashboard can list them next to the container.
type LabelProblems struct {
	sink metric.Sink
}

// NewLabelProblems returns a collector writing to sink.
func NewLabelProblems(sink metric.Sink) *LabelProblems { return &LabelProblems{sink: sink} }

var _ inventory.Handler = (*LabelProblems)(nil)

// HandleChange implements inventory.Handler.
func (l *LabelProblems) HandleChange(_ context.Context, ch inventory.Change) {
	if ch.Kind != inventory.Seen || len(ch.Container.Config.Problems) == 0 {
		return
	}
	tags := ch.Container.Tags(ch.Engine)
	points := make([]metric.Point, 0, len(ch.Container.Config.Problems))
	for _, p := range ch.Container.Config.Problems {
		points = append(points, metric.New("lookout_label_problem", metric.WithTag(tags, "key", p.ShownKey()), []metric.Field{
			{Key: "value", Value: p.ShownValue()},
			{Key: "reason", Value: p.Reason},
		}, ch.Time))
	}
	l.sink.Add(points...)
}
