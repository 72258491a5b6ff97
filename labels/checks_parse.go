package labels

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Check defaults, applied to every parsed Check.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 5 * time.Second
	DefaultRise     = 1
	DefaultFall     = 1
	DefaultMethod   = http.MethodGet
	DefaultPath     = "/"

	minInterval = time.Second
	maxRiseFall = 10
)

var checkNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// hostRe accepts DNS names and Docker service names (which may hold '_').
var hostRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

const (
	targetForms = "want http://[host]:port/path, https://[host]:port/path, tcp://[host]:port or exec:<command> " +
		"(e.g. http://:8080/healthz, https://:8443/ready?full=1, tcp://:5432, exec:/app/bin/check --quick); " +
		"an empty host means the container's own address"
	nameRule = "check name must be 1 to 32 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
)

var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// checkSetting is one lookout.check.<name>.<setting> key.
type checkSetting struct {
	types []string // check types it applies to
	// parse applies value to chk, or says what is wrong and what is allowed. The caller
	// adds which default is kept.
	parse func(chk *Check, value string) error
	// def describes the value kept when value is bad.
	def func(chk *Check) string
}

var (
	allTypes     = []string{CheckHTTP, CheckTCP, CheckExec}
	networkTypes = []string{CheckHTTP, CheckTCP}
	httpOnly     = []string{CheckHTTP}
	tcpOnly      = []string{CheckTCP}
)

// settingOrder lists the settings in the order they are documented; "header" stands for
// header.<Name>.
var settingOrder = []string{
	"interval", "timeout", "rise", "fall", "network", "method", "header", "status", "body",
	"tls_skip_verify", "server_name", "follow_redirects", "send", "expect",
}

var settings = map[string]checkSetting{
	"interval": {allTypes, func(c *Check, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < minInterval {
			return fmt.Errorf("want a duration of at least %s, such as 30s or 1m", minInterval)
		}
		c.Interval = d
		return nil
	}, constDef(DefaultInterval.String())},
	// timeout is checked against the interval after every other setting; see parseChecks.
	"timeout": {allTypes, func(c *Check, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("want a duration above 0, such as 2s or 500ms, at most the interval")
		}
		c.Timeout = d
		return nil
	}, func(c *Check) string { return defaultTimeout(c.Interval).String() }},
	"rise": {allTypes, func(c *Check, v string) error {
		n, err := riseFall(v)
		if err == nil {
			c.Rise = n
		}
		return err
	}, constDef(strconv.Itoa(DefaultRise))},
	"fall": {allTypes, func(c *Check, v string) error {
		n, err := riseFall(v)
		if err == nil {
			c.Fall = n
		}
		return err
	}, constDef(strconv.Itoa(DefaultFall))},
	"network": {networkTypes, func(c *Check, v string) error {
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsFunc(v, isSpaceOrControl) {
			return fmt.Errorf("want a Docker network name the container is attached to, such as backend or mystack_default")
		}
		c.Network = v
		return nil
	}, constDef("(the network shared with the agent, else the container's first)")},
	"method": {httpOnly, func(c *Check, v string) error {
		m := strings.ToUpper(strings.TrimSpace(v))
		if !httpMethods[m] {
			return fmt.Errorf("want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		}
		c.Method = m
		return nil
	}, constDef(DefaultMethod)},
	// header is handled by parseHeader: its key carries the header name.
	"status": {httpOnly, func(c *Check, v string) error {
		r, err := parseStatus(v)
		if err != nil {
			return err
		}
		c.Status = r
		return nil
	}, constDef("200-399")},
	"body": {httpOnly, func(c *Check, v string) error {
		if v == "" {
			return fmt.Errorf("want a Go regular expression the body must match, such as \"status\":\\s*\"ok\"")
		}
		re, err := CompilePattern(v)
		if err != nil {
			return fmt.Errorf("%v; want one such as \"status\":\\s*\"ok\"", err)
		}
		c.Body = re
		return nil
	}, constDef("(any body)")},
	"tls_skip_verify": {httpOnly, func(c *Check, v string) error {
		b, err := parseBool(v)
		if err == nil {
			c.TLSSkipVerify = b
		}
		return err
	}, constDef("false")},
	"server_name": {httpOnly, func(c *Check, v string) error {
		v = strings.TrimSpace(v)
		if !hostRe.MatchString(v) {
			return fmt.Errorf("want a host name, such as api.example.com")
		}
		c.ServerName = v
		return nil
	}, constDef("(the target's host)")},
	"follow_redirects": {httpOnly, func(c *Check, v string) error {
		b, err := parseBool(v)
		if err == nil {
			c.FollowRedirects = b
		}
		return err
	}, constDef("false")},
	"send": {tcpOnly, func(c *Check, v string) error {
		if v == "" {
			return fmt.Errorf("want the text to write after connecting, such as \"PING\\r\\n\" (omit the label to send nothing)")
		}
		c.Send = v
		return nil
	}, constDef("(send nothing)")},
	"expect": {tcpOnly, func(c *Check, v string) error {
		if v == "" {
			return fmt.Errorf("want the text the reply must contain, such as +PONG (omit the label to accept any reply)")
		}
		c.Expect = v
		return nil
	}, constDef("(connecting is enough)")},
}

func constDef(s string) func(*Check) string { return func(*Check) string { return s } }

// defaultTimeout is 5s, or the interval when that is shorter.
func defaultTimeout(interval time.Duration) time.Duration {
	return min(DefaultTimeout, interval)
}

func riseFall(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > maxRiseFall {
		return 0, fmt.Errorf("want a whole number from 1 to %d", maxRiseFall)
	}
	return n, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want true or false")
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// parseStatus reads "200", "200-299" or "200-299,301,404".
func parseStatus(v string) ([]StatusRange, error) {
	bad := func(why string) error {
		return fmt.Errorf("%s; want codes from 100 to 599 and ranges, comma-separated, such as 200, 200-299 or 200-299,301,404", why)
	}
	var out []StatusRange
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, bad("empty status")
		}
		lo, hi, isRange := strings.Cut(part, "-")
		r := StatusRange{}
		var err1, err2 error
		r.Min, err1 = strconv.Atoi(strings.TrimSpace(lo))
		r.Max = r.Min
		if isRange {
			r.Max, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		switch {
		case err1 != nil || err2 != nil:
			return nil, bad(fmt.Sprintf("%q is not a code or a range", part))
		case r.Min < 100 || r.Max > 599 || r.Max < 100 || r.Min > 599:
			return nil, bad(fmt.Sprintf("%q is out of range", part))
		case r.Min > r.Max:
			return nil, bad(fmt.Sprintf("%q starts above its end", part))
		}
		out = append(out, r)
	}
	return out, nil
}

// parseTarget reads the value of lookout.check.<name>=<target> into c.
func parseTarget(c *Check, v string) error {
	v = strings.TrimSpace(v)
	if len(v) >= 5 && strings.EqualFold(v[:5], "exec:") {
		argv, err := splitCommand(v[5:])
		if err != nil {
			return err
		}
		c.Type, c.Command = CheckExec, argv
		return nil
	}
	scheme, _, ok := strings.Cut(v, "://")
	if !ok {
		return fmt.Errorf("no scheme")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" && scheme != "tcp" {
		return fmt.Errorf("unknown scheme %q", scheme)
	}
	u, err := url.Parse(v)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("not a URL (%v)", err)
	}
	switch {
	case u.User != nil:
		return fmt.Errorf("credentials in the target are not supported (use the header.Authorization setting)")
	case u.Fragment != "" || strings.Contains(v, "#"):
		return fmt.Errorf("a #fragment is never sent; remove it")
	}
	if host := u.Hostname(); host != "" {
		if net.ParseIP(host) == nil && !hostRe.MatchString(host) {
			return fmt.Errorf("%q is not a host name or IP address", host)
		}
		c.Host = host
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not from 1 to 65535", p)
		}
		c.Port = n
	}
	switch scheme {
	case "tcp":
		if c.Port == 0 {
			return fmt.Errorf("a tcp target needs a port")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
			return fmt.Errorf("a tcp target has no path or query")
		}
		c.Type = CheckTCP
	default:
		c.Type, c.Scheme = CheckHTTP, scheme
		if c.Port == 0 {
			c.Port = map[string]int{"http": 80, "https": 443}[scheme]
		}
		c.Path = u.EscapedPath()
		if c.Path == "" {
			c.Path = DefaultPath
		}
		if u.RawQuery != "" {
			c.Path += "?" + u.RawQuery
		}
	}
	return nil
}

// splitCommand splits an exec command on whitespace; "double quotes" keep spaces in one
// argument. There are no other escapes: single quotes and backslashes are plain text.
func splitCommand(s string) ([]string, error) {
	var (
		argv   []string
		cur    strings.Builder
		inArg  bool // cur holds an argument, possibly "" from a pair of quotes
		quoted bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inArg = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inArg {
				argv = append(argv, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated double quote in the command")
	}
	if inArg {
		argv = append(argv, cur.String())
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("the exec command is empty")
	}
	return argv, nil
}

// validHeaderName says whether s is an HTTP token (RFC 9110 field name).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

func knownSettings() string {
	var s []string
	for _, k := range settingOrder {
		if k == "header" {
			k = "header.<Header-Name>"
		}
		s = append(s, k)
	}
	return strings.Join(s, ", ")
}

func appliesTo(types []string) string {
	switch len(types) {
	case 1:
		return "applies to " + types[0] + " checks only"
	case 2:
		return "applies to " + types[0] + " and " + types[1] + " checks only"
	}
	return ""
}

// parseChecks decodes the lookout.check.* labels in l (every key has KeyCheckPrefix).
// Each bad key is reported through problem; it affects only what it configures.
func parseChecks(l map[string]string, problem func(k, v, reason string)) []Check {
	type pending struct {
		declared bool
		key, val string   // the declaring label
		settings []string // setting keys, sorted
	}
	byName := map[string]*pending{}
	for k, v := range l {
		rest := strings.TrimPrefix(k, KeyCheckPrefix)
		name, _, isSetting := strings.Cut(rest, ".")
		if !checkNameRe.MatchString(name) {
			problem(k, v, nameRule+"; want "+KeyCheckPrefix+"<name>=<target> or "+KeyCheckPrefix+"<name>.<setting>=<value>")
			continue
		}
		p := byName[name]
		if p == nil {
			p = &pending{}
			byName[name] = p
		}
		if isSetting {
			p.settings = append(p.settings, k)
		} else {
			p.declared, p.key, p.val = true, k, v
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)

	var checks []Check
	declared := 0
	for _, name := range names {
		p := byName[name]
		sort.Strings(p.settings)
		if !p.declared {
			for _, k := range p.settings {
				problem(k, l[k], fmt.Sprintf("no check %s declared: add %s%s=<target>", name, KeyCheckPrefix, name))
			}
			continue
		}
		if declared++; declared > MaxChecks {
			// Its settings configure nothing: this label's problem says why.
			problem(p.key, p.val, fmt.Sprintf("at most %d checks per container; the first %d by name are run; check %s is not run",
				MaxChecks, MaxChecks, name))
			continue
		}
		c := Check{Name: name, Interval: DefaultInterval, Rise: DefaultRise, Fall: DefaultFall}
		dropped := false
		if err := tooLong(p.val, MaxValueSize); err != nil {
			problem(p.key, p.val, fmt.Sprintf("%v; check %s is not run", err, name))
			c, dropped = Check{Name: name, Interval: DefaultInterval, Rise: DefaultRise, Fall: DefaultFall}, true
		} else if err := parseTarget(&c, p.val); err != nil {
			problem(p.key, p.val, fmt.Sprintf("%v; %s; check %s is not run", err, targetForms, name))
			// Its settings are still checked, so that every mistake shows at once.
			c, dropped = Check{Name: name, Interval: DefaultInterval, Rise: DefaultRise, Fall: DefaultFall}, true
		}
		if c.Type == CheckHTTP {
			c.Method = DefaultMethod
		}
		// interval first: the timeout is judged against it.
		intervalKey := KeyCheckPrefix + name + ".interval"
		sort.SliceStable(p.settings, func(i, j int) bool {
			return p.settings[i] == intervalKey && p.settings[j] != intervalKey
		})
		timeoutKey := ""
		headers := 0
		for _, k := range p.settings {
			v := l[k]
			setting := strings.TrimPrefix(k, KeyCheckPrefix+name+".")
			if h, ok := strings.CutPrefix(setting, "header."); ok {
				if headers++; headers > MaxHeaders {
					problem(k, v, fmt.Sprintf("at most %d header.* settings per check; the first %d by name are sent; header not sent", MaxHeaders, MaxHeaders))
					continue
				}
				if err := tooLong(v, MaxValueSize); err != nil {
					problem(k, v, err.Error()+"; header not sent")
					continue
				}
				parseHeader(&c, dropped, k, v, h, problem)
				continue
			}
			s, ok := settings[setting]
			if !ok {
				problem(k, v, fmt.Sprintf("unknown setting %q; known settings: %s", setting, knownSettings()))
				continue
			}
			if !dropped && !slices.Contains(s.types, c.Type) {
				problem(k, v, appliesTo(s.types)+"; "+isType(c)+"; ignored")
				continue
			}
			if err := tooLong(v, MaxValueSize); err != nil {
				problem(k, v, fmt.Sprintf("%v; using the default %s", err, s.def(&c)))
				continue
			}
			if err := s.parse(&c, v); err != nil {
				problem(k, v, fmt.Sprintf("%v; using the default %s", err, s.def(&c)))
				continue
			}
			if setting == "timeout" {
				timeoutKey = k
			}
		}
		if timeoutKey == "" {
			c.Timeout = defaultTimeout(c.Interval)
		} else if c.Timeout > c.Interval {
			def := defaultTimeout(c.Interval)
			problem(timeoutKey, l[timeoutKey], fmt.Sprintf("timeout %s is longer than the interval %s; want at most the interval; using the default %s",
				c.Timeout, c.Interval, def))
			c.Timeout = def
		}
		if !dropped {
			checks = append(checks, c)
		}
	}
	return checks
}

// parseHeader reads lookout.check.<name>.header.<Header-Name>=<value>.
func parseHeader(c *Check, dropped bool, k, v, name string, problem func(k, v, reason string)) {
	if !dropped && c.Type != CheckHTTP {
		problem(k, v, appliesTo(httpOnly)+"; "+isType(*c)+"; ignored")
		return
	}
	if !validHeaderName(name) {
		problem(k, v, "want header.<Header-Name> with a name of letters, digits and !#$%&'*+-.^_`|~, such as header.Authorization; header not sent")
		return
	}
	val := strings.TrimSpace(v)
	if val == "" || strings.ContainsFunc(val, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }) {
		problem(k, v, "want a header value without line breaks or control characters; header not sent")
		return
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if c.Headers.Get(canon) != "" {
		problem(k, v, fmt.Sprintf("header %s is already set by another %s%s.header.* label; set each header once; header not sent",
			canon, KeyCheckPrefix, c.Name))
		return
	}
	if c.Headers == nil {
		c.Headers = http.Header{}
	}
	c.Headers[canon] = []string{val}
}

// isType says "check web is an http check".
func isType(c Check) string {
	a := "a"
	if c.Type == CheckExec || c.Type == CheckHTTP {
		a = "an"
	}
	return fmt.Sprintf("check %s is %s %s check", c.Name, a, c.Type)
}
