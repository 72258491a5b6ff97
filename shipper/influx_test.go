package shipper

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- a fake InfluxDB ----

// fakeResp is one programmed answer.
type fakeResp struct {
	status int // 0 means 204
	body   string
	header map[string]string
	hangUp bool // close the connection without answering
}

// fakeReq is one request as the fake InfluxDB saw it.
type fakeReq struct {
	n             int // index among all requests, from 0
	at            time.Time
	method, path  string
	query         url.Values
	header        http.Header
	user, pass    string
	basicAuth     bool
	raw           []byte   // body as sent
	body          string   // body after gzip decoding
	lines         []string // non-empty lines of body
	status        int      // status answered
	contentLength int64
}

func (r *fakeReq) isWrite() bool { return strings.HasSuffix(r.path, "/write") }

// hasLine reports whether the request carries a line whose measurement is name.
func (r *fakeReq) hasLine(name string) bool {
	for _, l := range r.lines {
		if strings.HasPrefix(l, name+",") || strings.HasPrefix(l, name+" ") {
			return true
		}
	}
	return false
}

// fakeInflux answers from its queue first, then from its handler, else 204. Requests
// are recorded, and lines of writes answered 2xx are kept in order as accepted.
type fakeInflux struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []fakeReq
	written  []string
	queue    []fakeResp
	handler  func(*fakeReq) fakeResp
	badInput bool
}

func newFakeInflux(t *testing.T) *fakeInflux {
	f := &fakeInflux{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeInflux) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := fakeReq{at: time.Now(), method: r.Method, path: r.URL.Path, query: r.URL.Query(),
		header: r.Header.Clone(), raw: raw, body: string(raw), contentLength: r.ContentLength}
	req.user, req.pass, req.basicAuth = r.BasicAuth()
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		var plain []byte
		if err == nil {
			plain, err = io.ReadAll(zr)
		}
		if err != nil {
			f.mu.Lock()
			f.badInput = true
			f.mu.Unlock()
			http.Error(w, "bad gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		req.body = string(plain)
	}
	req.lines = splitLines(req.body)

	f.mu.Lock()
	req.n = len(f.reqs)
	var resp fakeResp
	switch {
	case len(f.queue) > 0:
		resp, f.queue = f.queue[0], f.queue[1:]
	case f.handler != nil:
		resp = f.handler(&req)
	}
	if resp.status == 0 && !resp.hangUp {
		resp.status = http.StatusNoContent
	}
	req.status = resp.status
	if req.isWrite() && resp.status/100 == 2 {
		f.written = append(f.written, req.lines...)
	}
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()

	if resp.hangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	}
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	if resp.body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

// enqueue programs the next answers, before the handler is asked.
func (f *fakeInflux) enqueue(rs ...fakeResp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, rs...)
}

// setHandler programs the answers once the queue is empty. h runs with the fake locked.
func (f *fakeInflux) setHandler(h func(*fakeReq) fakeResp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

func (f *fakeInflux) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeInflux) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeInflux) writes() []fakeReq {
	var out []fakeReq
	for _, r := range f.requests() {
		if r.isWrite() {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeInflux) accepted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.written...)
}

func (f *fakeInflux) v1Config() InfluxConfig {
	return InfluxConfig{URL: f.srv.URL, Version: 1, Database: "db", Timeout: 5 * time.Second}
}

func (f *fakeInflux) v2Config() InfluxConfig {
	return InfluxConfig{URL: f.srv.URL, Version: 2, Org: "acme", Bucket: "metrics", Token: "X", Timeout: 5 * time.Second}
}

func newInfluxOutput(t *testing.T, oc OutputConfig, ic InfluxConfig) *Output {
	t.Helper()
	o, err := NewInfluxOutput(oc, ic, discardLogger())
	if err != nil {
		t.Fatalf("NewInfluxOutput: %v", err)
	}
	return o
}

// noDuplicates fails if a line was accepted twice.
func noDuplicates(t *testing.T, lines []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("line delivered twice: %q", l)
		}
		seen[l] = true
	}
}

// ---- 2xx ----

func TestInflux2xxLinesArrive(t *testing.T) {
	for _, status := range []int{200, 204} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFakeInflux(t)
			f.setHandler(func(*fakeReq) fakeResp { return fakeResp{status: status} })
			o := newInfluxOutput(t, fastConfig(), f.v1Config())
			s := New(o)
			runShipper(t, s)
			s.Add(pts("m", 0, 3)...)
			s.Add(pts("m", 3, 23)...)
			eventually(t, func() bool { return settled(o, 23) }, waitLong, "written == 23")
			equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 23))
			for _, r := range f.requests() {
				if r.method != http.MethodPost || r.path != "/write" {
					t.Fatalf("request %s %s, want POST /write", r.method, r.path)
				}
				if len(r.lines) > 10 {
					t.Fatalf("write of %d lines, batch size 10", len(r.lines))
				}
				if ce := r.header.Get("Content-Encoding"); ce != "" {
					t.Fatalf("Content-Encoding %q without Gzip", ce)
				}
				if !strings.HasSuffix(r.body, "\n") {
					t.Fatalf("body does not end in a newline: %q", r.body)
				}
			}
			if st := o.Stats(); st.WriteErrors != 0 || st.Retries != 0 || st.Rejected != 0 || st.Buffered != 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestInfluxGzip(t *testing.T) {
	f := newFakeInflux(t)
	ic := f.v1Config()
	ic.Gzip = true
	o := newInfluxOutput(t, fastConfig(), ic)
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 4)...)
	eventually(t, func() bool { return settled(o, 4) }, waitLong, "written == 4")
	ws := f.writes()
	if len(ws) != 1 {
		t.Fatalf("%d writes, want 1", len(ws))
	}
	r := ws[0]
	if ce := r.header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", ce)
	}
	if len(r.raw) < 2 || r.raw[0] != 0x1f || r.raw[1] != 0x8b {
		t.Fatalf("body is not gzip: % x", r.raw[:min(len(r.raw), 8)])
	}
	if want := strings.Join(wantLines("m", 0, 4), "\n") + "\n"; r.body != want {
		t.Fatalf("decompressed body = %q, want %q", r.body, want)
	}
	f.mu.Lock()
	bad := f.badInput
	f.mu.Unlock()
	if bad {
		t.Fatal("the fake saw a body it could not decompress")
	}
}

func TestInfluxV1QueryAndAuth(t *testing.T) {
	for _, tc := range []struct {
		precision, param string
		tsDiv            int64
	}{
		{"ns", "n", 1}, {"us", "u", 1e3}, {"ms", "ms", 1e6}, {"s", "s", 1e9},
	} {
		t.Run(tc.precision, func(t *testing.T) {
			f := newFakeInflux(t)
			ic := f.v1Config()
			ic.URL += "/influx/" // a path prefix is kept
			ic.RetentionPolicy = "autogen"
			ic.Username, ic.Password = "alice", "s3cr:et"
			oc := fastConfig()
			oc.Precision = tc.precision
			o := newInfluxOutput(t, oc, ic)
			s := New(o)
			runShipper(t, s)
			p := pt("m", 0)
			p.Time = time.Unix(1700000000, 123456789)
			s.Add(p)
			eventually(t, func() bool { return settled(o, 1) }, waitLong, "written == 1")
			r := f.writes()[0]
			if r.method != http.MethodPost || r.path != "/influx/write" {
				t.Fatalf("%s %s, want POST /influx/write", r.method, r.path)
			}
			want := url.Values{"db": {"db"}, "rp": {"autogen"}, "precision": {tc.param}}
			if r.query.Encode() != want.Encode() {
				t.Fatalf("query = %v, want %v", r.query, want)
			}
			if !r.basicAuth || r.user != "alice" || r.pass != "s3cr:et" {
				t.Fatalf("basic auth = %v %q %q, want alice / s3cr:et", r.basicAuth, r.user, r.pass)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Fatalf("Content-Type = %q", r.header.Get("Content-Type"))
			}
			wantTS := fmt.Sprint(p.Time.UnixNano() / tc.tsDiv)
			equalLines(t, "accepted", f.accepted(), []string{"m,host=h1 v=0i " + wantTS})
		})
	}
}

func TestInfluxV1NoAuthNoRP(t *testing.T) {
	f := newFakeInflux(t)
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pt("m", 0))
	eventually(t, func() bool { return settled(o, 1) }, waitLong, "written == 1")
	r := f.writes()[0]
	if r.basicAuth || r.header.Get("Authorization") != "" {
		t.Fatalf("Authorization sent without credentials: %q", r.header.Get("Authorization"))
	}
	if _, ok := r.query["rp"]; ok {
		t.Fatalf("rp sent without a retention policy: %v", r.query)
	}
}

func TestInfluxV2PathQueryToken(t *testing.T) {
	for _, prec := range []string{"ns", "ms"} {
		t.Run(prec, func(t *testing.T) {
			f := newFakeInflux(t)
			oc := fastConfig()
			oc.Precision = prec
			o := newInfluxOutput(t, oc, f.v2Config())
			s := New(o)
			runShipper(t, s)
			s.Add(pts("m", 0, 2)...)
			eventually(t, func() bool { return settled(o, 2) }, waitLong, "written == 2")
			r := f.writes()[0]
			if r.method != http.MethodPost || r.path != "/api/v2/write" {
				t.Fatalf("%s %s, want POST /api/v2/write", r.method, r.path)
			}
			want := url.Values{"org": {"acme"}, "bucket": {"metrics"}, "precision": {prec}}
			if r.query.Encode() != want.Encode() {
				t.Fatalf("query = %v, want %v", r.query, want)
			}
			if got := r.header.Get("Authorization"); got != "Token X" {
				t.Fatalf("Authorization = %q, want \"Token X\"", got)
			}
			if len(r.lines) != 2 {
				t.Fatalf("lines = %q", r.lines)
			}
		})
	}
}

// ---- 400 partial write ----

func TestInfluxPartialWriteNotRetried(t *testing.T) {
	f := newFakeInflux(t)
	f.enqueue(fakeResp{status: 400,
		body: `{"error":"partial write: field type conflict: input field \"v\" on measurement \"m\" is type float, already exists as type integer dropped=2"}`})
	oc := fastConfig()
	oc.BatchSize = 5
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 5)...)
	eventually(t, func() bool { st := o.Stats(); return st.Rejected+st.Written == 5 && st.Buffered == 0 }, waitLong,
		"the batch finished")
	st := o.Stats()
	if st.Rejected != 2 || st.Written != 3 || st.Buffered != 0 || st.Retries != 0 || st.WriteErrors != 1 {
		t.Fatalf("stats = %+v, want rejected 2, written 3, buffered 0, retries 0, write errors 1", st)
	}
	// One more line shows what the next write carries: that line only, not the old batch.
	s.Add(pt("m", 5))
	eventually(t, func() bool { return settled(o, 4) }, waitLong, "written == 4")
	ws := f.writes()
	if len(ws) != 2 {
		t.Fatalf("%d writes, want 2 (no retry of the partially written batch)", len(ws))
	}
	equalLines(t, "second write", ws[1].lines, []string{wantLine("m", 5)})
}

// ---- 400 / 422 for the whole batch ----

func testRejectsBadLines(t *testing.T, status int) {
	f := newFakeInflux(t)
	f.setHandler(func(r *fakeReq) fakeResp {
		if r.hasLine("bad") {
			return fakeResp{status: status, body: `{"error":"unable to parse 'bad,host=h1 v=…': invalid field format"}`}
		}
		return fakeResp{status: 204}
	})
	oc := fastConfig()
	oc.BatchSize = 16
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	runShipper(t, s)

	var want []string
	bad := map[int]bool{0: true, 6: true, 7: true, 15: true, 20: true}
	for i := 0; i < 24; i++ {
		if bad[i] {
			s.Add(pt("bad", i))
		} else {
			s.Add(pt("good", i))
			want = append(want, wantLine("good", i))
		}
	}
	eventually(t, func() bool { st := o.Stats(); return st.Written+st.Rejected == 24 && st.Buffered == 0 },
		waitLong, "all 24 lines finished")
	got := f.accepted()
	noDuplicates(t, got)
	equalLines(t, "accepted", got, want)
	st := o.Stats()
	if st.Rejected != uint64(len(bad)) || st.Written != uint64(24-len(bad)) || st.Retries != 0 {
		t.Fatalf("stats = %+v, want rejected %d, written %d, retries 0", st, len(bad), 24-len(bad))
	}
	nErr := 0
	for _, r := range f.writes() {
		if r.status == status {
			nErr++
		}
	}
	if st.WriteErrors != uint64(nErr) {
		t.Fatalf("write errors = %d, the server answered %d %d times", st.WriteErrors, status, nErr)
	}
}

func TestInflux400RejectsOnlyBadLines(t *testing.T) { testRejectsBadLines(t, 400) }

func TestInflux422RejectsOnlyBadLines(t *testing.T) { testRejectsBadLines(t, 422) }

// ---- 401 / 503: keep and retry ----

func testRetriedUntilRecovered(t *testing.T, status int, body string) {
	f := newFakeInflux(t)
	const failures = 3
	for i := 0; i < failures; i++ {
		f.enqueue(fakeResp{status: status, body: body})
	}
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 4)...)
	eventually(t, func() bool { return settled(o, 4) }, waitLong, "written == 4")
	equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 4))

	ws := f.writes()
	if len(ws) != failures+1 {
		t.Fatalf("%d writes, want %d", len(ws), failures+1)
	}
	for i, r := range ws {
		equalLines(t, fmt.Sprintf("write %d", i), r.lines, wantLines("m", 0, 4))
		if i > 0 {
			// Backoff: min(250 ms << n, RetryMax 50 ms) with -20 % jitter is at least 40 ms.
			if gap := r.at.Sub(ws[i-1].at); gap < 30*time.Millisecond {
				t.Fatalf("write %d came %v after the previous one: no backoff", i, gap)
			}
		}
	}
	st := o.Stats()
	if st.Retries != failures || st.WriteErrors != failures || st.Rejected != 0 || st.Dropped != 0 || st.Buffered != 0 {
		t.Fatalf("stats = %+v, want retries %d, write errors %d, nothing rejected, dropped or buffered", st, failures, failures)
	}
}

func TestInflux401RetriedUntilRecovered(t *testing.T) {
	testRetriedUntilRecovered(t, 401, `{"error":"authorization failed"}`)
}

func TestInflux503RetriedUntilRecovered(t *testing.T) {
	testRetriedUntilRecovered(t, 503, `{"error":"service unavailable"}`)
}

func TestInfluxConnectionDroppedRetriedNothingLost(t *testing.T) {
	f := newFakeInflux(t)
	f.enqueue(fakeResp{hangUp: true}, fakeResp{hangUp: true})
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 3)...)
	eventually(t, func() bool { return settled(o, 3) }, waitLong, "written == 3")
	equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 3))
	if n := len(f.writes()); n != 3 {
		t.Fatalf("%d writes, want 3", n)
	}
	if st := o.Stats(); st.WriteErrors != 2 || st.Retries != 2 || st.Buffered != 0 {
		t.Fatalf("stats = %+v, want 2 write errors and 2 retries", st)
	}
}

// ---- Retry-After ----

func TestInfluxRetryAfter(t *testing.T) {
	for _, status := range []int{429, 503} {
		for _, kind := range []string{"seconds", "http-date"} {
			t.Run(fmt.Sprintf("%d-%s", status, kind), func(t *testing.T) {
				t.Parallel()
				f := newFakeInflux(t)
				first := true
				f.setHandler(func(*fakeReq) fakeResp {
					if !first {
						return fakeResp{status: 204}
					}
					first = false
					ra := "1"
					if kind == "http-date" {
						// Whole seconds: the wait is between 1 s and 2 s.
						ra = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
					}
					return fakeResp{status: status, header: map[string]string{"Retry-After": ra}}
				})
				o := newInfluxOutput(t, fastConfig(), f.v1Config())
				s := New(o)
				runShipper(t, s)
				s.Add(pts("m", 0, 2)...)
				eventually(t, func() bool { return settled(o, 2) }, waitLong, "written == 2")
				ws := f.writes()
				if len(ws) != 2 {
					t.Fatalf("%d writes, want 2", len(ws))
				}
				gap := ws[1].at.Sub(ws[0].at)
				if gap < 900*time.Millisecond {
					t.Fatalf("retried %v after a Retry-After of about 1 s", gap)
				}
				if gap > 8*time.Second {
					t.Fatalf("retried %v after a Retry-After of at most 2 s", gap)
				}
				equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 2))
				if st := o.Stats(); st.Retries != 1 || st.WriteErrors != 1 {
					t.Fatalf("stats = %+v, want 1 retry, 1 write error", st)
				}
			})
		}
	}
}

// ---- 404 database not found ----

func TestInfluxCreatesMissingDatabase(t *testing.T) {
	f := newFakeInflux(t)
	exists := false
	f.setHandler(func(r *fakeReq) fakeResp {
		switch {
		case r.path == "/query":
			if q, _ := url.ParseQuery(r.body); q.Get("q") == `CREATE DATABASE "db"` {
				exists = true
			}
			return fakeResp{status: 200, body: `{"results":[{"statement_id":0}]}`}
		case !exists:
			return fakeResp{status: 404, body: `{"error":"database not found: \"db\""}`}
		}
		return fakeResp{status: 204}
	})
	ic := f.v1Config()
	ic.Username, ic.Password = "u", "p"
	o := newInfluxOutput(t, fastConfig(), ic)
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 3)...)
	eventually(t, func() bool { return settled(o, 3) }, waitLong, "written == 3")
	equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 3))

	rs := f.requests()
	if len(rs) != 3 {
		t.Fatalf("%d requests, want 3 (write, create, write)", len(rs))
	}
	if rs[0].path != "/write" || rs[0].status != 404 || rs[2].path != "/write" || rs[2].status/100 != 2 {
		t.Fatalf("requests: %s %d, %s %d", rs[0].path, rs[0].status, rs[2].path, rs[2].status)
	}
	c := rs[1]
	q, err := url.ParseQuery(c.body)
	if err != nil {
		t.Fatal(err)
	}
	if c.method != http.MethodPost || c.path != "/query" || q.Get("q") != `CREATE DATABASE "db"` {
		t.Fatalf("create request: %s %s q=%q, want POST /query q=CREATE DATABASE \"db\"", c.method, c.path, q.Get("q"))
	}
	if ct := c.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Fatalf("create request Content-Type = %q", ct)
	}
	if !c.basicAuth || c.user != "u" || c.pass != "p" {
		t.Fatalf("create request without the credentials")
	}
	// The write that got 404 and then succeeded after creating is not an error.
	if st := o.Stats(); st.WriteErrors != 0 || st.Retries != 0 {
		t.Fatalf("stats = %+v, want no write errors or retries", st)
	}
}

func TestInfluxSkipDatabaseCreationKeepsRetrying(t *testing.T) {
	f := newFakeInflux(t)
	f.setHandler(func(r *fakeReq) fakeResp {
		return fakeResp{status: 404, body: `{"error":"database not found: \"db\""}`}
	})
	ic := f.v1Config()
	ic.SkipDatabaseCreation = true
	o := newInfluxOutput(t, fastConfig(), ic)
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 3)...)
	eventually(t, func() bool { return len(f.writes()) >= 4 }, waitLong, "4 write attempts")
	for _, r := range f.requests() {
		if r.path != "/write" {
			t.Fatalf("request to %s with SkipDatabaseCreation", r.path)
		}
	}
	st := o.Stats()
	if st.Written != 0 || st.Rejected != 0 || st.Buffered != 3 || st.Retries < 3 || st.WriteErrors < 3 {
		t.Fatalf("stats = %+v, want nothing written or rejected, 3 buffered, >= 3 retries", st)
	}
}

func TestInfluxDatabaseCreationFailsKeepsBatch(t *testing.T) {
	f := newFakeInflux(t)
	creates := 0
	f.setHandler(func(r *fakeReq) fakeResp {
		switch {
		case r.path == "/query" && creates == 0:
			creates++
			return fakeResp{status: 500, body: `{"error":"boom"}`}
		case r.path == "/query":
			creates++
			return fakeResp{status: 200}
		case creates < 2:
			return fakeResp{status: 404, body: `{"error":"database not found: \"db\""}`}
		}
		return fakeResp{status: 204}
	})
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 3)...)
	eventually(t, func() bool { return settled(o, 3) }, waitLong, "written == 3")
	equalLines(t, "accepted", f.accepted(), wantLines("m", 0, 3))
	if st := o.Stats(); st.Retries != 1 || st.Rejected != 0 {
		t.Fatalf("stats = %+v, want 1 retry, nothing rejected", st)
	}
}

// ---- 413 ----

func TestInflux413SplitsUntilItFits(t *testing.T) {
	const maxLines = 3
	f := newFakeInflux(t)
	f.setHandler(func(r *fakeReq) fakeResp {
		if len(r.lines) > maxLines || r.hasLine("huge") {
			return fakeResp{status: 413, body: `{"error":"Request Entity Too Large"}`}
		}
		return fakeResp{status: 204}
	})
	oc := fastConfig()
	oc.BatchSize = 16
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	runShipper(t, s)
	var want []string
	for i := 0; i < 16; i++ {
		if i == 9 {
			s.Add(pt("huge", i))
			continue
		}
		s.Add(pt("m", i))
		want = append(want, wantLine("m", i))
	}
	eventually(t, func() bool { st := o.Stats(); return st.Written+st.Rejected == 16 && st.Buffered == 0 },
		waitLong, "all lines finished")
	got := f.accepted()
	noDuplicates(t, got)
	equalLines(t, "accepted", got, want)
	for _, r := range f.writes() {
		if r.status/100 == 2 && len(r.lines) > maxLines {
			t.Fatalf("a write of %d lines was accepted", len(r.lines))
		}
	}
	if st := o.Stats(); st.Rejected != 1 || st.Written != 15 || st.Retries != 0 {
		t.Fatalf("stats = %+v, want rejected 1, written 15, retries 0", st)
	}
}

// A retryable error half way through a split keeps what was already written and
// retries only the rest.
func TestInflux413ThenUnavailableResumesWhereItStopped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		queue   []fakeResp
		writes  int
		resumed int // first line of the retried write
	}{
		// 8 lines: 413; first 4 written; last 4 get 503.
		{"second half fails", []fakeResp{{status: 413}, {status: 204}, {status: 503}}, 4, 4},
		// 8 lines: 413; first 4: 413, its first 2 written, its last 2 get 503.
		{"nested split fails", []fakeResp{{status: 413}, {status: 413}, {status: 204}, {status: 503}}, 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeInflux(t)
			f.enqueue(tc.queue...)
			oc := fastConfig()
			oc.BatchSize = 8
			o := newInfluxOutput(t, oc, f.v1Config())
			s := New(o)
			runShipper(t, s)
			s.Add(pts("m", 0, 8)...)
			eventually(t, func() bool { return settled(o, 8) }, waitLong, "written == 8")
			got := f.accepted()
			noDuplicates(t, got)
			equalLines(t, "accepted", got, wantLines("m", 0, 8))
			ws := f.writes()
			if len(ws) != tc.writes {
				t.Fatalf("%d writes, want %d", len(ws), tc.writes)
			}
			equalLines(t, "retry", ws[len(ws)-1].lines, wantLines("m", tc.resumed, 8))
			if st := o.Stats(); st.Retries != 1 || st.Rejected != 0 {
				t.Fatalf("stats = %+v, want 1 retry, nothing rejected", st)
			}
		})
	}
}

// ---- classify / parseRetryAfter ----

func TestClassify(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	date := now.Add(30 * time.Second).Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		msg        string
		kind       errKind
		dropped    int
		wait       time.Duration
	}{
		{"413", 413, "", "too large", errTooLarge, 0, 0},
		{"413 ignores Retry-After", 413, "5", "", errTooLarge, 0, 0},
		{"400", 400, "", `{"error":"unable to parse"}`, errRejected, 0, 0},
		{"422", 422, "", `{"error":"failed to parse line protocol"}`, errRejected, 0, 0},
		{"400 partial", 400, "", `{"error":"partial write: field type conflict: dropped=2"}`, errPartial, 2, 0},
		{"422 partial", 422, "", `{"code":"unprocessable entity","message":"partial write: points beyond retention policy dropped=17"}`, errPartial, 17, 0},
		{"partial, one unparsable line", 400, "", `{"error":"partial write: unable to parse 'm v=': missing field value"}`, errPartial, 1, 0},
		{"partial without count", 400, "", `{"error":"partial write: max-values-per-tag limit exceeded"}`, errPartial, 1, 0},
		{"429 seconds", 429, "3", "", errRetry, 0, 3 * time.Second},
		{"429 none", 429, "", "", errRetry, 0, 0},
		{"503 date", 503, date, "", errRetry, 0, 30 * time.Second},
		{"503 none", 503, "", "", errRetry, 0, 0},
		{"503 bad", 503, "soon", "", errRetry, 0, 0},
		{"401 ignores Retry-After", 401, "5", "unauthorized", errRetry, 0, 0},
		{"403", 403, "", "", errRetry, 0, 0},
		{"404", 404, "", `{"error":"database not found: \"db\""}`, errRetry, 0, 0},
		{"500", 500, "", "", errRetry, 0, 0},
		{"502", 502, "", "", errRetry, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := classify(tc.status, tc.retryAfter, tc.msg, now)
			if e.kind != tc.kind || e.dropped != tc.dropped || e.retryAfter != tc.wait || e.status != tc.status || e.msg != tc.msg {
				t.Fatalf("classify = %+v, want kind %d dropped %d wait %v", *e, tc.kind, tc.dropped, tc.wait)
			}
			if want := fmt.Sprintf("http %d: %s", tc.status, tc.msg); e.Error() != want {
				t.Fatalf("Error() = %q, want %q", e.Error(), want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	later := now.Add(90 * time.Second)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{"-1", 0},
		{"1.5", 0},
		{" 1", 0},
		{"abc", 0},
		{later.Format(http.TimeFormat), 90 * time.Second},
		{later.Format(time.RFC850), 90 * time.Second},
		{later.Format(time.ANSIC), 90 * time.Second},
		{now.Format(http.TimeFormat), 0},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Tue, 02 Jan 2024 03:04:65 GMT", 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// Absurdly large values must not overflow into a short or negative wait.
	for _, in := range []string{"9223372037", "18446744074", "100000000000"} {
		if got := parseRetryAfter(in, now); got < 10*time.Minute {
			t.Errorf("parseRetryAfter(%q) = %v, want a long wait (>= 10m)", in, got)
		}
	}
}
