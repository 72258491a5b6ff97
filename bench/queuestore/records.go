package main

import (
	"bytes"
	"fmt"
)

// lineBytes is the size of one line of line protocol in the records: about what a
// docker_container_* point with Swarm tags is.
const lineBytes = 200

// seqDigits is the width of the sequence number written into every line.
const seqDigits = 12

// recordKind is a record of lines lines: an output's batch as the queue would hold it.
// Every record's content is a function of its sequence number, so a reader can tell a
// record delivered intact from one delivered damaged.
type recordKind struct {
	lines  int
	tmpl   []byte
	seqOff []int // where each line's sequence number starts
	buf    []byte
}

func newRecordKind(lines int) *recordKind {
	k := &recordKind{lines: lines}
	for j := 0; j < lines; j++ {
		head := fmt.Sprintf("docker_container_health,container_name=shop_web.%d.x3k9w2,engine_host=node-01,"+
			"com.docker.swarm.service.name=shop_web seq=", j)
		mid := `i,health_status="healthy",note="`
		tail := "\" 1700000000000000000\n"
		pad := lineBytes - len(head) - seqDigits - len(mid) - len(tail)
		if pad < 0 {
			panic("line template longer than lineBytes")
		}
		k.tmpl = append(k.tmpl, head...)
		k.seqOff = append(k.seqOff, len(k.tmpl))
		k.tmpl = append(k.tmpl, bytes.Repeat([]byte{'0'}, seqDigits)...)
		k.tmpl = append(k.tmpl, mid...)
		k.tmpl = append(k.tmpl, bytes.Repeat([]byte{'x'}, pad)...)
		k.tmpl = append(k.tmpl, tail...)
	}
	k.buf = make([]byte, len(k.tmpl))
	return k
}

// size is the bytes of one record.
func (k *recordKind) size() int { return len(k.tmpl) }

// gen returns record seq (valid until the next call).
func (k *recordKind) gen(seq uint64) []byte {
	copy(k.buf, k.tmpl)
	k.put(k.buf, seq)
	return k.buf
}

func (k *recordKind) put(b []byte, seq uint64) {
	for _, off := range k.seqOff {
		v := seq
		for i := seqDigits - 1; i >= 0; i-- {
			b[off+i] = byte('0' + v%10)
			v /= 10
		}
	}
}

// check reports the sequence number of data and whether data is exactly that record.
func (k *recordKind) check(data []byte) (uint64, bool) {
	if len(data) != len(k.tmpl) {
		return 0, false
	}
	var seq uint64
	for i := 0; i < seqDigits; i++ {
		c := data[k.seqOff[0]+i]
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	want := make([]byte, len(k.tmpl))
	copy(want, k.tmpl)
	k.put(want, seq)
	return seq, bytes.Equal(want, data)
}
