package msgpackbench

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lookout-agent/lookout/logs/forward"
)

func init() { msgpack.RegisterExt(0, (*EventTime)(nil)) }

// handWritten is the fixture as the agent holds it (records with []byte logs, the
// container's fields encoded once) and its encoding by logs/forward.
type handWritten struct {
	tag, chunk string
	meta       forward.Meta
	entries    []forward.Entry
}

func newHandWritten(f Forward) handWritten {
	h := handWritten{tag: f.Tag, chunk: f.Option.Chunk, meta: forward.NewMeta(MetaFields(f.Entries[0].Record))}
	for _, e := range f.Entries {
		h.entries = append(h.entries, forward.Entry{Time: e.Time.Time, Source: e.Record.Source, Log: []byte(e.Record.Log)})
	}
	return h
}

func (h *handWritten) encode() []byte {
	return forward.AppendForward(nil, h.tag, h.meta, len(h.entries), func(i int) forward.Entry { return h.entries[i] }, h.chunk)
}

// TestSameMessage: the three encoders write the same message (decoded and compared, as
// integer widths may differ), so the benchmark compares like with like.
func TestSameMessage(t *testing.T) {
	want := Fixture()
	h := newHandWritten(want)
	gen, err := want.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	refl, err := msgpack.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"hand-written": h.encode(), "tinylib/msgp": gen, "vmihailenco/msgpack": refl} {
		var got Forward
		if err := msgpack.Unmarshal(b, &got); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(got.Entries) != len(want.Entries) || got.Tag != want.Tag || got.Option != want.Option {
			t.Errorf("%s: tag %q, %d entries, option %+v", name, got.Tag, len(got.Entries), got.Option)
			continue
		}
		for i := range want.Entries {
			g, w := got.Entries[i], want.Entries[i]
			if !g.Time.Equal(w.Time.Time) || g.Record != w.Record {
				t.Errorf("%s: entry %d is %+v, want %+v", name, i, g, w)
				break
			}
		}
		t.Logf("%s: %d bytes", name, len(b))
	}
	var gen2 Forward
	if _, err := gen2.UnmarshalMsg(h.encode()); err != nil || !gen2.Entries[999].Time.Equal(want.Entries[999].Time.Time) {
		t.Errorf("msgp cannot read the hand-written message: %v", err)
	}
}

var sink []byte

// BenchmarkEncode encodes one Forward message of 1000 records, as the log forwarder
// does for each batch (a new buffer each time: a message stays in the window until its
// ack).
func BenchmarkEncode(b *testing.B) {
	f := Fixture()
	b.Run("handwritten", func(b *testing.B) {
		h := newHandWritten(f)
		b.ReportAllocs()
		for b.Loop() {
			sink = h.encode()
		}
		b.SetBytes(int64(len(sink)))
	})
	b.Run("tinylib-msgp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink, _ = f.MarshalMsg(nil)
		}
		b.SetBytes(int64(len(sink)))
	})
	b.Run("vmihailenco-msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink, _ = msgpack.Marshal(&f)
		}
		b.SetBytes(int64(len(sink)))
	})
}
