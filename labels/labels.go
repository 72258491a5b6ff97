// Package labels decodes the lookout.* labels of a container. A bad value is a Problem
// that names the key, the value and what is allowed; it affects only what that key
// configures. Unknown lookout.* keys are Problems too, never silently ignored.
package labels

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
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
	// Problems lists bad values and unknown keys, sorted by key: the first MaxProblems.
	Problems []Problem
	// Omitted counts the problems beyond MaxProblems, not listed.
	Omitted int
	// Logs are the lookout.logs* settings of the log forwarder.
	Logs Logs
}

// Problem is one label Lookout could not use.
type Problem struct {
	Key    string
	Value  string // the label's value; of one over MaxValueSize, its first 128 bytes
	Reason string // what was wrong and what is allowed
	size   int    // the value's length when Value holds only its start
}

func (p Problem) Error() string {
	return fmt.Sprintf("label %s=%q: %s", p.ShownKey(), p.ShownValue(), p.Reason)
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
	var checks, tags map[string]string
	for k, v := range labels {
		if !strings.HasPrefix(k, Prefix) {
			continue
		}
		if !strings.HasPrefix(k, KeyCheckPrefix) && !strings.HasPrefix(k, KeyTagPrefix) {
			// A check's labels are judged by parseChecks, which says what a long one costs.
			if err := tooLong(v, MaxValueSize); err != nil {
				c.problem(k, v, err.Error()+"; the label is ignored")
				continue
			}
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
			case len(key) > MaxTagKeySize:
				c.problem(k, v, fmt.Sprintf("tag key of %d bytes is too long; at most %d bytes allowed; tag not added", len(key), MaxTagKeySize))
			case !tagKeyRe.MatchString(key):
				c.problem(k, v, "tag key must be letters, digits, '_', '.' or '-'")
			case reserved[key]:
				c.problem(k, v, fmt.Sprintf("tag key %q is set by Lookout itself; choose another key", key))
			case v == "":
				c.problem(k, v, "tag value must not be empty")
			case len(v) > MaxTagValueSize:
				c.problem(k, v, fmt.Sprintf("tag value of %d bytes is too long; at most %d bytes allowed; tag not added", len(v), MaxTagValueSize))
			default:
				if tags == nil {
					tags = map[string]string{}
				}
				tags[key] = v
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
	c.Tags = c.firstTags(tags)
	c.Checks = parseChecks(checks, c.problem)
	sort.Slice(c.Problems, func(i, j int) bool { return c.Problems[i].Key < c.Problems[j].Key })
	if len(c.Problems) > MaxProblems {
		c.Omitted = len(c.Problems) - MaxProblems
		// A copy: the problems cut off (and the reasons they hold) must not stay alive
		// in the array under a re-slice.
		c.Problems = slices.Clone(c.Problems[:MaxProblems])
	}
	return c
}

// firstTags keeps the first MaxTags good tags by key; each other one is a Problem.
func (c *Config) firstTags(tags map[string]string) map[string]string {
	if len(tags) <= MaxTags {
		return tags
	}
	keys := slices.Sorted(maps.Keys(tags))
	for _, k := range keys[MaxTags:] {
		c.problem(KeyTagPrefix+k, tags[k], fmt.Sprintf("at most %d %s* labels per container; the first %d by key are used; tag not added",
			MaxTags, KeyTagPrefix, MaxTags))
	}
	// A new map: one emptied by delete keeps the room of every tag it held.
	first := make(map[string]string, MaxTags)
	for _, k := range keys[:MaxTags] {
		first[k] = tags[k]
	}
	return first
}

func (c *Config) problem(k, v, reason string) {
	p := Problem{Key: k, Value: v, Reason: reason}
	if len(v) > MaxValueSize {
		// What is shown of it, a copy: a Problem must not hold a megabyte label alive
		// with every inspection of its container.
		p.Value, p.size = strings.Clone(v[:shownCut(v)]), len(v)
	}
	c.Problems = append(c.Problems, p)
}

// Monitored says whether a container with this configuration is monitored: an explicit
// lookout.enable decides; without one, monitorAll (the agent setting) does.
func (c Config) Monitored(monitorAll bool) bool {
	if c.Enable != nil {
		return *c.Enable
	}
	return monitorAll
}
