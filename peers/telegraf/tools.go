//go:build tools

// Package tools pins the Telegraf version used as a test peer.
// Build it with peers/build.sh (see that script for the exact command).
package tools

import (
	_ "github.com/influxdata/telegraf/cmd/telegraf"
)
