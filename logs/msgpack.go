package logs

import (
	"bufio"
	"encoding/binary"
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
func readAck(r *bufio.Reader) (string, error) {
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
