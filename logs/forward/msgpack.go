package forward

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The few MessagePack forms the forward protocol needs, written by hand so that the agent
// needs no MessagePack library.

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n < 1<<16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n < 1<<16:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
	}
}

// appendStr writes s as a MessagePack str, byte for byte (invalid UTF-8 included, as
// Docker's fluentd driver sends it).
func appendStr[T string | []byte](b []byte, s T) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendUint(b []byte, v uint64) []byte {
	if v < 128 {
		return append(b, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendEventTime writes Fluentd's EventTime: ext type 0, seconds and nanoseconds.
func appendEventTime(b []byte, t time.Time) []byte {
	b = append(b, 0xd7, 0x00)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// readAck reads the server's answer to a chunk, {"ack": "<chunk>"}, and returns the chunk.
// An array instead is the server's HELO: it wants the shared-key handshake (errHELO).
func readAck(r *bufio.Reader) (string, error) {
	if c, err := r.Peek(1); err == nil && (c[0]&0xf0 == 0x90 || c[0] == 0xdc) {
		if v, err := readValue(r, 0); err == nil {
			if a, ok := v.([]any); ok && len(a) > 0 && a[0] == "HELO" {
				return "", errHELO
			}
		}
		return "", errors.New("forward protocol: want a map in the ack, got an array")
	}
	n, err := readMapHeader(r)
	if err != nil {
		return "", err
	}
	ack := ""
	for i := 0; i < n; i++ {
		k, err := readStr(r)
		if err != nil {
			return "", err
		}
		v, err := readStr(r)
		if err != nil {
			return "", err
		}
		if k == "ack" {
			ack = v
		}
	}
	return ack, nil
}

func readMapHeader(r *bufio.Reader) (int, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		var b [2]byte
		_, err := io.ReadFull(r, b[:])
		return int(binary.BigEndian.Uint16(b[:])), err
	}
	return 0, fmt.Errorf("forward protocol: want a map in the ack, got byte 0x%02x", c)
}

func readStr(r *bufio.Reader) (string, error) {
	c, err := r.ReadByte()
	if err != nil {
		return "", err
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		b, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		n = int(b)
	case c == 0xda || c == 0xc5:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		n = int(binary.BigEndian.Uint16(b[:]))
	default:
		return "", fmt.Errorf("forward protocol: want a string in the ack, got byte 0x%02x", c)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// readValue decodes one MessagePack value of the handshake: nil, bool, integers, str and
// bin (both as string), arrays ([]any) and maps with string keys (map[string]any).
func readValue(r *bufio.Reader, depth int) (any, error) {
	if depth > 4 {
		return nil, errors.New("forward protocol: nested too deep")
	}
	c, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xc0:
		return nil, nil
	case c == 0xc2 || c == 0xc3:
		return c == 0xc3, nil
	case c&0xe0 == 0xa0, c == 0xd9, c == 0xda, c == 0xc4, c == 0xc5:
		_ = r.UnreadByte()
		return readStr(r)
	case c >= 0xcc && c <= 0xd3:
		size := 1 << ((c - 0xcc) & 3)
		var b [8]byte
		if _, err := io.ReadFull(r, b[8-size:]); err != nil {
			return nil, err
		}
		v := binary.BigEndian.Uint64(b[:])
		if c >= 0xd0 { // signed: extend the sign
			shift := 64 - 8*size
			return int64(v<<shift) >> shift, nil
		}
		return int64(v), nil
	case c&0xf0 == 0x90 || c == 0xdc:
		if n, err = readLen16(r, c, 0x90, 0xdc); err != nil {
			return nil, err
		}
		a := make([]any, 0, min(n, 16))
		for i := 0; i < n; i++ {
			v, err := readValue(r, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case c&0xf0 == 0x80 || c == 0xde:
		if n, err = readLen16(r, c, 0x80, 0xde); err != nil {
			return nil, err
		}
		m := make(map[string]any, min(n, 16))
		for i := 0; i < n; i++ {
			k, err := readStr(r)
			if err != nil {
				return nil, err
			}
			v, err := readValue(r, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("forward protocol: unexpected byte 0x%02x", c)
}

// readLen16 reads the length of a fix or 16-bit array or map.
func readLen16(r *bufio.Reader, c, fix, long byte) (int, error) {
	if c != long {
		return int(c - fix), nil
	}
	var b [2]byte
	_, err := io.ReadFull(r, b[:])
	return int(binary.BigEndian.Uint16(b[:])), err
}
