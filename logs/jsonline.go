package logs

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// A json-file log line, as Docker's json-file driver writes it (moby
// daemon/logger/jsonfilelog/jsonlog): {"log":"…","stream":"stdout","time":"…"}, with an
// "attrs" object when the container has log-opt labels or env. The log text keeps its
// newline; a piece of a line cut at 16 KiB has none.

// errBadLine is a line of a log file that is no json-file entry: counted and skipped.
var errBadLine = errors.New("bad json-file line")

// parseJSONLine parses one line (without its newline) of a json-file log, appending the
// decoded log text to dst. It returns the extended dst and the entry's stream and time;
// the text is dst[len(dst before):]. The fast path reads Docker's own layout; anything
// else valid goes through encoding/json.
func parseJSONLine(line, dst []byte) (out []byte, stream string, ts time.Time, err error) {
	start := len(dst)
	if out, stream, ts, ok := parseFast(line, dst); ok {
		return out, stream, ts, nil
	}
	var e struct {
		Log    *string `json:"log"`
		Stream string  `json:"stream"`
		Time   string  `json:"time"`
	}
	if json.Unmarshal(line, &e) != nil || e.Log == nil {
		return dst[:start], "", time.Time{}, errBadLine
	}
	ts, perr := time.Parse(time.RFC3339Nano, e.Time)
	if perr != nil || (e.Stream != "stdout" && e.Stream != "stderr") {
		return dst[:start], "", time.Time{}, errBadLine
	}
	return append(dst[:start], *e.Log...), e.Stream, ts, nil
}

// parseFast reads {"log":"…","stream":"stdout|stderr","time":"…"…}: the order Docker
// writes; ok is false for anything else.
func parseFast(line, dst []byte) (out []byte, stream string, ts time.Time, ok bool) {
	const pre = `{"log":"`
	if len(line) < len(pre) || string(line[:len(pre)]) != pre {
		return dst, "", ts, false
	}
	out, rest, ok := unquote(line[len(pre):], dst)
	if !ok {
		return dst, "", ts, false
	}
	switch {
	case hasPrefix(rest, `,"stream":"stdout","time":"`):
		stream, rest = "stdout", rest[len(`,"stream":"stdout","time":"`):]
	case hasPrefix(rest, `,"stream":"stderr","time":"`):
		stream, rest = "stderr", rest[len(`,"stream":"stderr","time":"`):]
	default:
		return dst, "", ts, false
	}
	end := 0
	for end < len(rest) && rest[end] != '"' {
		end++
	}
	if end == len(rest) {
		return dst, "", ts, false
	}
	if tail := rest[end+1:]; string(tail) != "}" && !hasPrefix(tail, `,"attrs":`) {
		return dst, "", ts, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
	if err != nil {
		return dst, "", ts, false
	}
	return out, stream, t, true
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// unquote decodes a JSON string body up to its closing quote, appending to dst; rest is
// what follows the quote.
func unquote(s, dst []byte) (out, rest []byte, ok bool) {
	for i := 0; i < len(s); {
		// The run of bytes needing no decoding goes in one append.
		j := i
		for j < len(s) && s[j] != '"' && s[j] != '\\' && s[j] >= 0x20 {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			return dst, nil, false
		}
		switch c := s[j]; {
		case c == '"':
			return dst, s[j+1:], true
		case c < 0x20:
			return dst, nil, false
		}
		// A backslash.
		if j+1 >= len(s) {
			return dst, nil, false
		}
		switch s[j+1] {
		case '"', '\\', '/':
			dst = append(dst, s[j+1])
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			r, n := hex4(s[j+2:])
			if n < 0 {
				return dst, nil, false
			}
			j += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s) > j+3 && s[j+2] == '\\' && s[j+3] == 'u' {
					if r2, n = hex4(s[j+4:]); n < 0 {
						r2 = -1
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, nil, false
		}
		i = j + 2
	}
	return dst, nil, false
}

func hex4(s []byte) (rune, int) {
	if len(s) < 4 {
		return 0, -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}
