// Package labels decodes the lookout.* labels of a container. A bad value is a Problem
// that names the key, the value and what is allowed; it affects only what that key
// configures. Unknown lookout.* keys are Problems too, never silently ignored.
package labels

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Prefix is the namespace of every label Lookout reads.
const Prefix = "lookout."

// Keys Lookout understands, documented in docs/labels-and-checks.md.
const (
	KeyEnable    = Prefix + "enable"
	KeyTagPrefix = Prefix + "tags."
)

// Config is what a container's labels ask of Lookout.
type Config struct {
	// Enable is the value of lookout.enable; nil when the label is absent or bad.
	Enable *bool
	// Tags are the lookout.tags.<key>=<value> pairs, added to every point of the container.
	Tags map[string]string
	// Checks are the probes declared by lookout.check.<name>=<target> labels, tuned by
	// lookout.check.<name>.<setting>=<value>, sorted by Name. A check whose target is bad
	// is left out; a bad setting keeps its default.
	Checks []Check
	// Problems lists bad values and unknown keys, sorted by key.
	Problems []Problem
	// Logs are the lookout.logs* settings of the log forwarder.
	Logs Logs
}

// Problem is one label Lookout could not use.
type Problem struct {
	Key, Value string
	Reason     string // what was wrong and what is allowed
}

func (p Problem) Error() string {
	return fmt.Sprintf("label %s=%q: %s", p.Key, p.Value, p.Reason)
}

var tagKeyRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)

// reserved are tag keys that Lookout sets itself; a lookout.tags.* label may not replace them.
var reserved = map[string]bool{
	"engine_host": true, "server_version": true, "container_name": true, "container_image": true,
	"container_version": true, "container_status": true, "service": true, "stack": true,
	"task_slot": true, "node": true, "check": true, "type": true, "result": true, "action": true,
	"output": true,
}

// Parse decodes the lookout.* labels among labels.
func Parse(labels map[string]string) Config {
	var c Config
	var checks map[string]string
	for k, v := range labels {
		if !strings.HasPrefix(k, Prefix) {
			continue
		}
		switch {
		case k == KeyEnable:
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true":
				t := true
				c.Enable = &t
			case "false":
				f := false
				c.Enable = &f
			default:
				c.problem(k, v, "want true or false")
			}
		case strings.HasPrefix(k, KeyTagPrefix):
			key := strings.TrimPrefix(k, KeyTagPrefix)
			switch {
			case !tagKeyRe.MatchString(key):
				c.problem(k, v, "tag key must be letters, digits, '_', '.' or '-'")
			case reserved[key]:
				c.problem(k, v, fmt.Sprintf("tag key %q is set by Lookout itself; choose another key", key))
			case v == "":
				c.problem(k, v, "tag value must not be empty")
			default:
				if c.Tags == nil {
					c.Tags = map[string]string{}
				}
				c.Tags[key] = v
			}
		case c.parseLogs(k, v):
		case strings.HasPrefix(k, KeyCheckPrefix):
			if checks == nil {
				checks = map[string]string{}
			}
			checks[k] = v
		default:
			c.problem(k, v, "unknown key; known keys: "+KeyEnable+", "+KeyTagPrefix+"<key>, "+
				KeyCheckPrefix+"<name>, "+KeyCheckPrefix+"<name>.<setting>, "+
				KeyLogs+", "+KeyLogsTag+", "+KeyLogsMultiline)
		}
	}
	c.Checks = parseChecks(checks, c.problem)
	sort.Slice(c.Problems, func(i, j int) bool { return c.Problems[i].Key < c.Problems[j].Key })
	return c
}

func (c *Config) problem(k, v, reason string) {
	c.Problems = append(c.Problems, Problem{Key: k, Value: v, Reason: reason})
}

// Monitored says whether a container with this configuration is monitored: an explicit
// lookout.enable decides; without one, monitorAll (the agent setting) does.
func (c Config) Monitored(monitorAll bool) bool {
	if c.Enable != nil {
		return *c.Enable
	}
	return monitorAll
}
