package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Body modes of FuzzRequest.
const (
	bodyPlain   = iota // the fuzzer's bytes as the body
	bodyGzip           // the fuzzer's bytes as the body, said to be gzip
	bodyGzipped        // the fuzzer's bytes gzipped by the test
	bodyModes
)

// FuzzRequest: an OTLP request body comes from any container of the node. The OTLP/HTTP
// receiver (protobuf and JSON) and the OTLP/gRPC one never panic, never hold more than
// the size limit (4096 bytes here) of a body, compressed or not, and answer as their
// docs say: 413 (RESOURCE_EXHAUSTED) above the limit, 400 (INVALID_ARGUMENT) for a bad
// gzip stream, framing or message, an OTLP status in the request's encoding, each
// counted. A protobuf request is taken exactly when proto.Unmarshal (the reference)
// takes the decompressed body, and the sink gets what it decodes, less the spans without
// valid IDs; a JSON request that is taken decodes again to the same message once
// written back as OTLP JSON.
func FuzzRequest(f *testing.F) {
	sink := &lastSink{}
	cfg := testConfig()
	h, err := NewHTTP(cfg, sink)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.ln.Close() })
	g, err := NewGRPC(cfg, sink)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = g.ln.Close() })
	limit := cfg.MaxRequestSize

	f.Fuzz(func(t *testing.T, body []byte, asJSON, viaGRPC bool, mode uint8) {
		mode %= bodyModes
		sent := body
		if mode == bodyGzipped {
			sent = gzipped(body)
		}
		// The reference: what the body decompresses to, or the status it earns.
		plain, wantStatus := sent, 0
		if mode != bodyPlain {
			zr, err := gzip.NewReader(bytes.NewReader(sent))
			if err == nil {
				plain, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
			}
			switch {
			case err != nil:
				wantStatus = 400
			case len(plain) > limit:
				wantStatus = 413
			}
		}
		if len(sent) > limit {
			wantStatus = 413
		}
		sink.rss = nil
		var status int
		var st Stats
		if viaGRPC {
			status, st = grpcCall(t, g, sent, mode != bodyPlain)
			asJSON = false
		} else {
			ctype := "application/x-protobuf"
			if asJSON {
				ctype = "application/json"
			}
			enc := ""
			if mode != bodyPlain {
				enc = "gzip"
			}
			w := post(h, "192.0.2.1:1234", ctype, enc, sent)
			status, st = w.Code, h.Stats()
			checkStatusBody(t, w, asJSON)
		}
		took := sink.rss

		var ref tracepb.TracesData
		if wantStatus == 0 {
			var err error
			if asJSON {
				err = decodeOTLPJSON(plain, &ref)
			} else {
				err = proto.Unmarshal(plain, &ref)
			}
			wantStatus = 200
			if err != nil {
				wantStatus = 400
			}
		}
		if status != wantStatus {
			t.Fatalf("status %d, want %d (stats %+v)", status, wantStatus, st)
		}
		if status != 200 {
			if len(took) > 0 {
				t.Fatalf("status %d and %d resources taken", status, len(took))
			}
			return
		}
		if asJSON {
			again := &tracepb.TracesData{}
			if err := decodeOTLPJSON(otlpJSON(t, &ref), again); err != nil || !proto.Equal(&ref, again) {
				t.Fatalf("written back as OTLP JSON, the request decodes to %v (%v), not %v", again, err, &ref)
			}
		}
		for _, rs := range ref.ResourceSpans {
			for _, ss := range rs.GetScopeSpans() {
				kept := ss.Spans[:0]
				for _, sp := range ss.Spans {
					if validIDs(sp) {
						kept = append(kept, sp)
					}
				}
				ss.Spans = kept
			}
		}
		if !proto.Equal(&tracepb.TracesData{ResourceSpans: took}, &tracepb.TracesData{ResourceSpans: ref.ResourceSpans}) {
			t.Fatalf("the sink took %v, want %v", took, ref.ResourceSpans)
		}
	})
}

// lastSink keeps what the last request handed on.
type lastSink struct{ rss []*tracepb.ResourceSpans }

func (s *lastSink) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	s.rss = append(s.rss, rss...)
	return true
}

// checkStatusBody checks that an answer other than 200 is an OTLP status (google.rpc.Status)
// in the request's encoding with the code of its HTTP status.
func checkStatusBody(t *testing.T, w *httptest.ResponseRecorder, asJSON bool) {
	t.Helper()
	if w.Code == 200 {
		return
	}
	want := map[int]uint64{400: 3, 413: 8}[w.Code]
	var code uint64
	var msg string
	if asJSON {
		var s struct {
			Code    uint64 `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			t.Fatalf("status %d: JSON body %q: %v", w.Code, w.Body, err)
		}
		code, msg = s.Code, s.Message
	} else {
		b := w.Body.Bytes()
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				t.Fatalf("status %d: protobuf body %x", w.Code, w.Body.Bytes())
			}
			b = b[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				code, n = protowire.ConsumeVarint(b)
			case num == 2 && typ == protowire.BytesType:
				var s string
				s, n = protowire.ConsumeString(b)
				msg = s
			default:
				n = protowire.ConsumeFieldValue(num, typ, b)
			}
			if n < 0 {
				t.Fatalf("status %d: protobuf body %x", w.Code, w.Body.Bytes())
			}
			b = b[n:]
		}
	}
	if code != want || msg == "" {
		t.Fatalf("status %d answered with code %d %q, want code %d and a message", w.Code, code, msg, want)
	}
}

// grpcCall makes one Export call with body as its framed message(s) and returns the HTTP
// status the gRPC status stands for (200 OK, 400 INVALID_ARGUMENT, 413
// RESOURCE_EXHAUSTED, 503 UNAVAILABLE), checking the message is framed as the gRPC protocol wants.
func grpcCall(t *testing.T, g *GRPC, msg []byte, gz bool) (int, Stats) {
	t.Helper()
	framed := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	if gz {
		framed[0] = 1
	}
	r := httptest.NewRequest(http.MethodPost, ExportMethod, bytes.NewReader(append(framed, msg...)))
	r.Header.Set("Content-Type", "application/grpc")
	if gz {
		r.Header.Set("Grpc-Encoding", "gzip")
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	code, err := strconv.Atoi(w.Header().Get("Grpc-Status"))
	if w.Code != 200 || err != nil {
		t.Fatalf("gRPC answer %d, grpc-status %q", w.Code, w.Header().Get("Grpc-Status"))
	}
	status := map[int]int{codeOK: 200, codeInvalidArgument: 400, codeResourceExhausted: 413, codeUnavailable: 503}[code]
	if status == 0 {
		t.Fatal(errors.New("gRPC status " + strconv.Itoa(code)))
	}
	if code != codeOK && w.Header().Get("Grpc-Message") == "" {
		t.Fatalf("gRPC status %d without a message", code)
	}
	return status, g.Stats()
}
