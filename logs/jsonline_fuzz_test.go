package logs

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseJSONLine: a json-file log file is written by Docker from what a container
// prints, and may be cut or damaged on disk. parseJSONLine never panics, leaves dst's
// bytes alone, and on every line that is valid JSON its hand-written fast path agrees with
// encoding/json (the reference): the same text, stream and time, or a bad line for both.
func FuzzParseJSONLine(f *testing.F) {
	for _, s := range []string{
		`{"log":"hello\n","stream":"stdout","time":"2026-11-27T05:00:00.123456789Z"}`,
		`{"log":"piece without newline","stream":"stderr","time":"2026-11-27T05:00:00Z"}`,
		`{"log":"esc \" \\ \/ \b\f\n\r\t \u00e9 \u2028 \ud83d\ude00 \ud800","stream":"stdout","time":"2026-11-27T05:00:00.1+02:00"}`,
		`{"log":"x\n","stream":"stdout","time":"2026-11-27T05:00:00Z","attrs":{"tag":"a"}}`,
		`{"stream":"stdout","log":"other order\n","time":"2026-11-27T05:00:00Z"}`,
		`{"log":"x","stream":"stdin","time":"2026-11-27T05:00:00Z"}`,
		`{"log":"x","stream":"stdout","time":"yesterday"}`,
		`{"log":"cut in the mid`,
		`{"log":null,"stream":"stdout","time":"2026-11-27T05:00:00Z"}`,
		"{\"log\":\"raw \xff byte\",\"stream\":\"stdout\",\"time\":\"2026-11-27T05:00:00Z\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		dst := []byte("kept")
		out, stream, ts, err := parseJSONLine(line, dst)
		if !bytes.Equal(out[:4], []byte("kept")) {
			t.Fatalf("dst's bytes changed: %q", out[:4])
		}
		if err != nil && len(out) != 4 {
			t.Fatalf("a bad line appended %q", out[4:])
		}
		if !json.Valid(line) || !utf8.Valid(line) {
			return
		}
		var e struct {
			Log    *string `json:"log"`
			Stream string  `json:"stream"`
			Time   string  `json:"time"`
		}
		refErr := json.Unmarshal(line, &e)
		var refTS time.Time
		if refErr == nil {
			refTS, refErr = time.Parse(time.RFC3339Nano, e.Time)
		}
		refOK := refErr == nil && e.Log != nil && (e.Stream == "stdout" || e.Stream == "stderr")
		if refOK != (err == nil) {
			t.Fatalf("%q: parseJSONLine err=%v, encoding/json ok=%v", line, err, refOK)
		}
		if refOK && (string(out[4:]) != *e.Log || stream != e.Stream || !ts.Equal(refTS)) {
			t.Fatalf("%q: got %q %s %v, encoding/json %q %s %v", line, out[4:], stream, ts, *e.Log, e.Stream, refTS)
		}
	})
}
