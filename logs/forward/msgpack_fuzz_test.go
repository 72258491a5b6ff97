package forward

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// FuzzServerAnswers: what the client reads from a Fluentd server (its acks, its HELO and
// PONG) is input the agent does not control. The hand-written MessagePack reader never
// panics, never reads past the value it decodes, and agrees with tinylib/msgp (the
// reference decoder) on every value it accepts: readValue decodes the same value,
// readAck returns the "ack" of a map of strings. A handshake with the fuzzer's HELO and
// PONG is never accepted: the PONG's digest depends on the client's random salt.
func FuzzServerAnswers(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// Values, one after another, as the handshake reads them.
		c := &counted{r: bytes.NewReader(data)}
		r := bufio.NewReader(c)
		rest := data
		for len(rest) > 0 {
			v, err := readValue(r, 0)
			if err != nil {
				break
			}
			ref, refUsed, rerr := reference(rest)
			if rerr != nil {
				t.Fatalf("readValue took %x as %#v; msgp: %v", rest, v, rerr)
			}
			if !reflect.DeepEqual(norm(v), norm(ref)) {
				t.Fatalf("%x: readValue %#v, msgp %#v", rest, v, ref)
			}
			used := c.n - r.Buffered() - (len(data) - len(rest))
			if used != refUsed {
				t.Fatalf("%x: readValue used %d bytes, msgp %d", rest, used, refUsed)
			}
			rest = rest[used:]
		}

		// Acks, one after another, as the reader of a connection takes them.
		c = &counted{r: bytes.NewReader(data)}
		r = bufio.NewReader(c)
		rest = data
		for len(rest) > 0 {
			chunk, err := readAck(r)
			if err != nil {
				break
			}
			ref, refUsed, rerr := reference(rest)
			m, isMap := ref.(map[string]any)
			if rerr != nil || !isMap {
				t.Fatalf("readAck took %x as ack %q; msgp: %#v, %v", rest, chunk, ref, rerr)
			}
			want := ""
			for k, v := range m {
				s, ok := norm(v).(string)
				if !ok {
					t.Fatalf("readAck took %x as ack %q; msgp: %q is %#v, not a string", rest, chunk, k, v)
				}
				if k == "ack" {
					want = s
				}
			}
			if chunk != want {
				t.Fatalf("%x: ack %q, msgp %q", rest, chunk, want)
			}
			used := c.n - r.Buffered() - (len(data) - len(rest))
			if used != refUsed {
				t.Fatalf("%x: readAck used %d bytes, msgp %d", rest, used, refUsed)
			}
			rest = rest[used:]
		}

		// The handshake: HELO and PONG from the fuzzer.
		a := &Auth{SharedKey: "k3y", SelfHostname: "agent-1", Username: "alice", Password: "pa55"}
		var ping bytes.Buffer
		_, err := a.handshake(bufio.NewReader(bytes.NewReader(data)), &ping)
		if err == nil {
			t.Fatalf("handshake accepted %x", data)
		}
		if !strings.Contains(err.Error(), "handshake") && !strings.Contains(err.Error(), "Fluentd refused") {
			t.Fatalf("handshake error %q does not say it is the handshake", err)
		}
	})
}

// reference decodes the first value of b with msgp and says how many bytes it used. b
// is given with zeros after it: msgp refuses a map with fewer than three bytes left per
// entry, though an entry of an empty key and a fixint is two ("\x81\xa0\x00"). A value
// msgp reads into the zeros is one b does not hold: the used bytes tell.
func reference(b []byte) (any, int, error) {
	padded := append(bytes.Clone(b), make([]byte, 3<<16)...)
	v, after, err := msgp.ReadIntfBytes(padded)
	return v, len(padded) - len(after), err
}

// counted counts the bytes read from r.
type counted struct {
	r io.Reader
	n int
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// norm maps msgp's values onto readValue's forms: bin is a string, every integer an
// int64 (readValue wraps a uint64 above the int64 range).
func norm(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case uint64:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = norm(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = norm(e)
		}
		return out
	}
	return v
}
