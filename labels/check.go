package labels

import (
	"net/http"
	"regexp"
	"time"
)

// KeyCheckPrefix starts every check label: lookout.check.<name>=<target> declares a
// check, lookout.check.<name>.<setting>=<value> tunes it.
const KeyCheckPrefix = Prefix + "check."

// Check types.
const (
	CheckHTTP = "http"
	CheckTCP  = "tcp"
	CheckExec = "exec"
)

// Check is one probe declared by labels. The zero values of optional settings are
// replaced by defaults when parsed.
type Check struct {
	Name string // [a-z0-9_-]+, from the label key
	Type string // CheckHTTP, CheckTCP or CheckExec

	// Target. Host "" means the container's own address; any other host must be allowed
	// by the agent's configuration.
	Scheme  string   // "http" or "https" (HTTP checks)
	Host    string   // "" = the container's own address
	Port    int      // HTTP and TCP checks
	Path    string   // HTTP path with query, starting with "/"
	Command []string // exec checks: argv run inside the container
	Network string   // Docker network whose address to use; "" = the one shared with the agent, else the first

	Interval time.Duration // default 10s, at least 1s
	Timeout  time.Duration // default 5s, at most Interval
	Rise     int           // successes in a row to turn passing (default 1)
	Fall     int           // failures in a row to turn failing (default 1)

	// HTTP settings.
	Method          string         // default GET
	Headers         http.Header    // lookout.check.<name>.header.<Name>=<value>
	Status          []StatusRange  // accepted status codes, default 200-399
	Body            *regexp.Regexp // the body (first 64 KiB) must match, if set
	TLSSkipVerify   bool
	ServerName      string // TLS server name (SNI and verification)
	FollowRedirects bool   // default false: a redirect is judged by its own status

	// TCP settings.
	Send   string // written after connecting, if set
	Expect string // the reply (first 4 KiB, read until it matches or the timeout) must contain it, if set
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }
