package resources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// StatsClient is what API needs of the Docker client.
type StatsClient interface {
	ContainerStats(ctx context.Context, containerID string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
}

// API reads a container's resource use from the Docker Engine's stats API with
// one-shot=true (API 1.41 and later): one answer at once, without the second sample the
// daemon otherwise waits about a second for.
type API struct {
	client StatsClient
}

// NewAPI returns a reader asking client.
func NewAPI(client StatsClient) *API { return &API{client: client} }

// Name implements Reader.
func (a *API) Name() string { return SourceAPI }

// Read implements Reader.
func (a *API) Read(ctx context.Context, t Target) (*container.StatsResponse, error) {
	r, err := a.client.ContainerStats(ctx, t.ID, client.ContainerStatsOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("stats of %s: %w", short(t.ID), err)
	}
	if s.Read.IsZero() || s.Read.Year() <= 1 {
		return nil, fmt.Errorf("stats of %s: the container is not running", short(t.ID))
	}
	return &s, nil
}
