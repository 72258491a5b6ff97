package lineproto

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/metric"
)

func TestEncodeEscapes(t *testing.T) {
	ts := time.Unix(1, 5)
	p := metric.New("m x,y", map[string]string{
		"name":  `a b,c=d"e\f`,
		"trail": `end\`,
		"nl":    "line1\nline2",
		"empty": "",
	}, []metric.Field{
		{Key: "s", Value: "say \"hi\"\\ \nnext"},
		{Key: "i", Value: int64(-3)},
		{Key: "u", Value: uint64(7)},
		{Key: "f", Value: 1.5},
		{Key: "b", Value: true},
		{Key: "nan", Value: math.NaN()},
		{Key: "inf", Value: math.Inf(1)},
	}, ts)
	line, skipped, err := NewEncoder(lineprotocol.Nanosecond).Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 2 {
		t.Errorf("skipped = %d, want 2 (NaN and Inf)", skipped)
	}
	want := `m\ x\,y,name=a\ b\,c\=d"e\f,nl=line1\nline2,trail=end＼ s="say \"hi\"\\ \nnext",i=-3i,u=7i,f=1.5,b=true 1000000005` + "\n"
	if string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
}

func TestEncodeNoFields(t *testing.T) {
	p := metric.New("m", nil, []metric.Field{{Key: "x", Value: math.NaN()}}, time.Unix(1, 0))
	if _, _, err := NewEncoder(lineprotocol.Nanosecond).Encode(p); err == nil || !strings.Contains(err.Error(), "no field") {
		t.Fatalf("err = %v, want no field error", err)
	}
}

func TestCleanTagValue(t *testing.T) {
	cases := map[string]string{
		"plain":       "plain",
		`a\b`:         `a\b`,
		`a\`:          "a＼",
		`a\,b`:        "a＼,b",
		`a\ b`:        "a＼ b",
		"tab\there":   `tab\there`,
		"bad\xffutf8": "bad\uFFFDutf8",
		"ünïcødé 日本":  "ünïcødé 日本",
		`\\`:          `\＼`,
		"nul\x00":     `nul\x00`,
	}
	for in, want := range cases {
		if got := CleanTagValue(in); got != want {
			t.Errorf("CleanTagValue(%q) = %q, want %q", in, got, want)
		}
	}
}
