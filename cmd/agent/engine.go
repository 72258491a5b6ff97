package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// supportedEngines is the range of Docker Engine API versions the client negotiates within.
const supportedEngines = "Docker 19.03 (API " + client.MinAPIVersion + ") to Docker 29 (API " + client.MaxAPIVersion + ")"

// errUnsupportedEngine marks an engine whose API is outside supportedEngines: retrying
// does not help, so the agent does not start.
var errUnsupportedEngine = errors.New("unsupported Docker Engine")

// refusedVersion reads the range an engine states when it refuses the API version asked
// for (HTTP 400): "client version 1.56 is too old. Minimum supported API version is 1.57,
// …" or "client version 1.56 is too new. Maximum supported API version is 1.39".
var refusedVersion = regexp.MustCompile(`(Minimum|Maximum) supported API version is ([0-9]+\.[0-9]+)`)

// engineAPI negotiates the API version with the engine and reads the engine's versions.
// An engine outside supportedEngines, too old for the client or refusing it as too old,
// gets an errUnsupportedEngine naming the engine's versions and the supported range,
// instead of the HTTP 400 that every later call would get.
func engineAPI(ctx context.Context, dc *client.Client) (client.ServerVersionResult, error) {
	ping, err := dc.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if ping.APIVersion != "" && versions.LessThan(ping.APIVersion, client.MinAPIVersion) {
		return client.ServerVersionResult{}, tooOld(dc, ping.APIVersion)
	}
	if err != nil {
		return client.ServerVersionResult{}, err
	}
	v, err := dc.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		m := refusedVersion.FindStringSubmatch(err.Error())
		switch {
		case m == nil:
		case m[1] == "Minimum" && versions.GreaterThan(m[2], client.MaxAPIVersion):
			return v, tooNew(dc, m[2], ping.APIVersion)
		case m[1] == "Maximum" && versions.LessThan(m[2], client.MinAPIVersion):
			return v, tooOld(dc, m[2])
		}
		return v, err
	}
	if v.MinAPIVersion != "" && versions.GreaterThan(v.MinAPIVersion, client.MaxAPIVersion) {
		return v, tooNew(dc, v.MinAPIVersion, v.APIVersion)
	}
	return v, nil
}

func tooOld(dc *client.Client, api string) error {
	return fmt.Errorf("%w: the Docker Engine at %s speaks API %s at most; Lookout supports %s: upgrade the engine",
		errUnsupportedEngine, dc.DaemonHost(), api, supportedEngines)
}

func tooNew(dc *client.Client, minAPI, api string) error {
	if api == "" {
		api = "?"
	}
	return fmt.Errorf("%w: the Docker Engine at %s requires API %s or later (it speaks up to %s); Lookout supports %s: upgrade Lookout",
		errUnsupportedEngine, dc.DaemonHost(), minAPI, api, supportedEngines)
}
