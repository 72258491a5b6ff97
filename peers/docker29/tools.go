//go:build tools

// Package tools pins the second engine the tests run against: Docker 29 (the daemon from
// github.com/moby/moby/v2) and the runc it needs (1.2 or later: Debian's 1.1.5 lacks the
// time namespace Docker 29 asks for). A module of its own so the agent's go.mod stays lean.
package tools

import (
	_ "github.com/moby/moby/v2/cmd/dockerd"
	_ "github.com/opencontainers/runc"
)
