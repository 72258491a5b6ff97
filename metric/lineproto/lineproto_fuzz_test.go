package lineproto

import (
	"math"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/metric"
)

// FuzzRoundTrip encodes arbitrary points and decodes them again with the reference
// decoder: what comes back must be exactly what CleanName/CleanTagValue promise.
func FuzzRoundTrip(f *testing.F) {
	f.Add("m", "k", `v a,l=u"e\`, "fk", "s\n\"\\", int64(1), 1.5, int64(5))
	f.Add("docker_container_health", "container_name", "ünï\\,x", "health_status", "", int64(-1), math.Inf(1), int64(-5))
	f.Add(" ,", "=", "\\", "\\", "\xff\x00", int64(0), math.NaN(), int64(0))
	f.Fuzz(func(t *testing.T, name, tk, tv, fk, fs string, fi int64, ff float64, ts int64) {
		if name == "" || tk == "" || fk == "" {
			return
		}
		p := metric.New(name, map[string]string{tk: tv}, []metric.Field{
			{Key: fk, Value: fs}, {Key: fk + "_i", Value: fi}, {Key: fk + "_f", Value: ff},
		}, time.Unix(0, ts))
		line, _, err := NewEncoder(lineprotocol.Nanosecond).Encode(p)
		if err != nil {
			t.Fatalf("encode %#v: %v", p, err)
		}
		dec := lineprotocol.NewDecoderWithBytes(line)
		if !dec.Next() {
			t.Fatalf("no line in %q", line)
		}
		m, err := dec.Measurement()
		if err != nil || string(m) != CleanMeasurement(name) {
			t.Fatalf("measurement %q err %v, want %q (line %q)", m, err, CleanMeasurement(name), line)
		}
		if tv != "" {
			k, v, err := dec.NextTag()
			if err != nil || string(k) != CleanName(tk) || string(v) != CleanTagValue(tv) {
				t.Fatalf("tag %q=%q err %v, want %q=%q (line %q)", k, v, err, CleanName(tk), CleanTagValue(tv), line)
			}
		}
		if k, _, err := dec.NextTag(); err != nil || k != nil {
			t.Fatalf("extra tag %q err %v (line %q)", k, err, line)
		}
		got := map[string]any{}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatalf("field: %v (line %q)", err, line)
			}
			if k == nil {
				break
			}
			got[string(k)] = v.Interface()
		}
		ck := CleanName(fk)
		if got[ck] != fieldString(fs) {
			t.Fatalf("string field %q, want %q (line %q)", got[ck], fieldString(fs), line)
		}
		if got[CleanName(fk+"_i")] != fi {
			t.Fatalf("int field %v, want %v (line %q)", got[CleanName(fk+"_i")], fi, line)
		}
		fkf := CleanName(fk + "_f")
		if math.IsNaN(ff) || math.IsInf(ff, 0) {
			if _, ok := got[fkf]; ok {
				t.Fatalf("non-finite float was sent: %q", line)
			}
		} else if got[fkf] != ff {
			t.Fatalf("float field %v, want %v", got[fkf], ff)
		}
		tm, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil || tm.UnixNano() != ts {
			t.Fatalf("time %v err %v, want %d", tm, err, ts)
		}
	})
}

func fieldString(s string) string {
	v, _ := fieldValue(s)
	return v.StringV()
}
