// Package lineproto encodes points (metric.Point) as InfluxDB line protocol: the one
// encoding the shipper's outputs and execd (Telegraf's inputs.execd) write.
package lineproto

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/metric"
)

// Encoder turns points into line protocol. Its zero value is not usable: use NewEncoder.
type Encoder struct {
	enc lineprotocol.Encoder
}

// NewEncoder returns an encoder writing timestamps at the given precision.
func NewEncoder(p lineprotocol.Precision) *Encoder {
	e := &Encoder{}
	e.enc.SetPrecision(p)
	return e
}

// Encode returns p as one line of line protocol ending in a newline. Fields whose value
// line protocol cannot carry (NaN, ±Inf, unsupported types) are left out and counted in
// skipped; a point with no field left is an error.
func (e *Encoder) Encode(p metric.Point) (line []byte, skipped int, err error) {
	e.enc.Reset()
	e.enc.StartLine(CleanMeasurement(p.Name))
	prev := ""
	for _, t := range p.Tags {
		k, v := CleanName(t.Key), CleanTagValue(t.Value)
		if k == "" || v == "" || k <= prev {
			// Empty or repeated keys are not representable; metric.New sorts and filters.
			skipped++
			continue
		}
		prev = k
		e.enc.AddTag(k, v)
	}
	n := 0
	for _, f := range p.Fields {
		v, ok := fieldValue(f.Value)
		if !ok || f.Key == "" {
			skipped++
			continue
		}
		e.enc.AddField(CleanName(f.Key), v)
		n++
	}
	if n == 0 {
		return nil, skipped, fmt.Errorf("point %q has no field that line protocol can carry", p.Name)
	}
	e.enc.EndLine(p.Time)
	if err := e.enc.Err(); err != nil {
		e.enc.ClearErr()
		return nil, skipped, err
	}
	return append([]byte(nil), e.enc.Bytes()...), skipped, nil
}

func fieldValue(x any) (lineprotocol.Value, bool) {
	switch v := x.(type) {
	case string:
		return lineprotocol.NewValue(strings.ToValidUTF8(v, "\uFFFD"))
	case int:
		return lineprotocol.IntValue(int64(v)), true
	case int32:
		return lineprotocol.IntValue(int64(v)), true
	case uint32:
		return lineprotocol.IntValue(int64(v)), true
	case uint64:
		// Unsigned integers need InfluxDB 1.8+ or 2.x; write them as signed integers, as
		// Telegraf does by default, so that every InfluxDB reads them.
		return lineprotocol.IntValue(int64(min(v, math.MaxInt64))), true
	default:
		return lineprotocol.NewValue(x) // NaN and ±Inf give false
	}
}

// fullwidthBackslash stands in for a backslash that line protocol cannot carry.
const fullwidthBackslash = '\uFF3C'

// CleanTagValue makes s encodable as a tag value, keeping every character that line
// protocol can carry: invalid UTF-8 becomes U+FFFD, control characters become their Go
// escape (a newline becomes the two characters \n), and a backslash at the end or before
// a comma, equals sign or space (which InfluxDB would read as an escape) becomes U+FF3C.
// Commas, spaces, equals signs and other backslashes are escaped by the encoder.
func CleanTagValue(s string) string {
	if isPlain(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for i, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		case r == '\\':
			next := i + 1
			if next == len(s) || s[next] == ',' || s[next] == '=' || s[next] == ' ' {
				b.WriteRune(fullwidthBackslash)
			} else {
				b.WriteByte('\\')
			}
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	// An escape written for a control character may itself end the value with a backslash
	// only for "\\"-free escapes, which QuoteRune never produces; still guard the end.
	if strings.HasSuffix(out, `\`) {
		out = strings.TrimSuffix(out, `\`) + string(fullwidthBackslash)
	}
	return out
}

// CleanMeasurement makes a measurement name encodable: as CleanName, and a leading '#',
// which would turn the line into a comment, becomes U+FF03.
func CleanMeasurement(s string) string {
	if strings.HasPrefix(s, "#") {
		s = "\uFF03" + s[1:]
	}
	return CleanName(s)
}

// CleanName makes a measurement name, tag key or field key encodable, by the same rules
// as CleanTagValue.
func CleanName(s string) string { return CleanTagValue(s) }

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}
