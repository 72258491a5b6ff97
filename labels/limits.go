package labels

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// Bounds on what a container's labels may ask, documented in docs/labels-and-checks.md
// ("Limits"). Docker itself does not bound labels: the 20.10 engine takes a 16 MiB label
// value and 10,000 labels through its API. A label beyond a bound is a Problem and
// configures nothing; the container's other labels work.
const (
	// MaxValueSize is the longest value of any lookout.* label (a check target or
	// setting, a header, a template, a pattern): a long bearer token fits.
	MaxValueSize = 8 << 10
	// MaxTagValueSize is the longest lookout.tags.* value: a tag is on every point, log
	// record and span of the container, and an index entry in InfluxDB.
	MaxTagValueSize = 256
	// MaxTagKeySize is the longest tag key (after lookout.tags.).
	MaxTagKeySize = 128
	// MaxTags is the most lookout.tags.* labels of one container; the first by key are used.
	MaxTags = 32
	// MaxChecks is the most checks of one container; the first by name are run.
	MaxChecks = 32
	// MaxHeaders is the most header.<Name> settings of one check; the first by name are sent.
	MaxHeaders = 32
	// MaxPatternSize is the longest regular expression (lookout.logs.multiline, a check's
	// body), and MaxPatternInsts the most instructions of its compiled program. Go's
	// engine is linear in the input, but each byte can cost every instruction: a pattern
	// of 500 instructions judges a 64 KiB body in about a quarter of a second at worst.
	// 500 is also the size up to which Go's faster backtracker is used.
	MaxPatternSize  = 1 << 10
	MaxPatternInsts = 500
	// MaxProblems is the most Problems listed for one container (the first by key);
	// Config.Omitted counts the rest.
	MaxProblems = 100
	// maxShown is the most bytes of a key or value a Problem shows in messages and points.
	maxShown = 128
)

// tooLong says what is wrong with a value longer than max bytes, or nil.
func tooLong(v string, max int) error {
	if len(v) <= max {
		return nil
	}
	return fmt.Errorf("value of %d bytes is too long; at most %d bytes allowed", len(v), max)
}

// CompilePattern compiles a label's regular expression within MaxPatternSize and
// MaxPatternInsts; the error says which bound was passed.
func CompilePattern(p string) (*regexp.Regexp, error) {
	if len(p) > MaxPatternSize {
		return nil, fmt.Errorf("pattern of %d bytes is too long; at most %d bytes allowed", len(p), MaxPatternSize)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("not a Go regular expression (%v)", err)
	}
	// regexp.Compile succeeded, so these do too; the program is what matching runs.
	tree, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return nil, err
	}
	if n := len(prog.Inst); n > MaxPatternInsts {
		return nil, fmt.Errorf("pattern compiles to %d instructions, too costly to match; at most %d allowed (repeat counts such as {1,30} and long alternations cost most)",
			n, MaxPatternInsts)
	}
	return re, nil
}

// shown cuts s to maxShown bytes for messages, saying how long it was (size, when s is
// already the start of a longer value).
func shown(s string, size int) string {
	if len(s) <= maxShown && size <= len(s) {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:shownCut(s)], max(size, len(s)))
}

// shownCut is where shown cuts s: at most maxShown bytes, on a character boundary.
func shownCut(s string) int {
	if len(s) <= maxShown {
		return len(s)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return cut
}

// ShownKey is the Problem's key as messages and points show it: at most 128 bytes.
func (p Problem) ShownKey() string { return shown(p.Key, 0) }

// ShownValue is the Problem's value as messages and points show it: at most 128 bytes.
func (p Problem) ShownValue() string { return shown(p.Value, p.size) }
