package shipper

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lookout-agent/lookout/internal/retryafter"
)

// InfluxConfig configures one InfluxDB output. Version 1 writes to /write (db, rp,
// precision, basic auth); version 2 to /api/v2/write (org, bucket, token).
type InfluxConfig struct {
	URL             string
	Version         int
	Database        string
	RetentionPolicy string
	Username        string
	Password        string
	Org             string
	Bucket          string
	Token           string
	Timeout         time.Duration
	Gzip            bool
	// SkipDatabaseCreation stops a v1 output from creating its database on a 404.
	SkipDatabaseCreation bool
}

// influxWriter sends batches of lines to one InfluxDB.
type influxWriter struct {
	cfg       InfluxConfig
	precision string
	client    *http.Client
	writeURL  string
}

func newInfluxWriter(cfg InfluxConfig, precision string) (*influxWriter, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influxdb url %q: want http://host:port or https://host:port", cfg.URL)
	}
	q := url.Values{}
	switch cfg.Version {
	case 1:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/write"
		q.Set("db", cfg.Database)
		if cfg.RetentionPolicy != "" {
			q.Set("rp", cfg.RetentionPolicy)
		}
		q.Set("precision", map[string]string{"ns": "n", "us": "u", "ms": "ms", "s": "s"}[precision])
	case 2:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/write"
		q.Set("org", cfg.Org)
		q.Set("bucket", cfg.Bucket)
		q.Set("precision", precision)
	default:
		return nil, fmt.Errorf("influxdb version %d: want 1 or 2", cfg.Version)
	}
	u.RawQuery = q.Encode()
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &influxWriter{cfg: cfg, precision: precision, client: &http.Client{Timeout: timeout}, writeURL: u.String()}, nil
}

// writeError says how a failed write is to be handled.
type writeError struct {
	kind       errKind
	status     int
	retryAfter time.Duration // from Retry-After, 0 if none
	dropped    int           // for a partial write: points the server rejected
	msg        string
}

type errKind int

const (
	errRetry    errKind = iota // keep the batch and try again later
	errTooLarge                // 413: split the batch
	errRejected                // 400/422 for the whole batch: split to find the bad points
	errPartial                 // the server wrote some points and rejected `dropped` of them
)

func (e *writeError) Error() string {
	if e.status == 0 {
		return e.msg
	}
	return fmt.Sprintf("http %d: %s", e.status, e.msg)
}

var droppedRe = regexp.MustCompile(`dropped=(\d+)`)

func (w *influxWriter) write(ctx context.Context, body []byte) error {
	err := w.post(ctx, body)
	var we *writeError
	if w.cfg.Version == 1 && !w.cfg.SkipDatabaseCreation && errors.As(err, &we) && we.status == http.StatusNotFound &&
		strings.Contains(we.msg, "database not found") {
		if cerr := w.createDatabase(ctx); cerr != nil {
			return &writeError{kind: errRetry, msg: fmt.Sprintf("%s; creating it: %v", we.msg, cerr)}
		}
		return w.post(ctx, body)
	}
	return err
}

func (w *influxWriter) post(ctx context.Context, body []byte) error {
	var rdr io.Reader = bytes.NewReader(body)
	if w.cfg.Gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, _ = zw.Write(body)
		_ = zw.Close()
		rdr = &zb
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.writeURL, rdr)
	if err != nil {
		return &writeError{kind: errRetry, msg: err.Error()}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "lookout")
	if w.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	w.auth(req)
	resp, err := w.client.Do(req)
	if err != nil {
		return &writeError{kind: errRetry, msg: err.Error()}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return classify(resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(msg)), time.Now())
}

func (w *influxWriter) auth(req *http.Request) {
	switch {
	case w.cfg.Version == 2 && w.cfg.Token != "":
		req.Header.Set("Authorization", "Token "+w.cfg.Token)
	case w.cfg.Username != "" || w.cfg.Password != "":
		req.SetBasicAuth(w.cfg.Username, w.cfg.Password)
	}
}

func (w *influxWriter) createDatabase(ctx context.Context) error {
	u, _ := url.Parse(w.cfg.URL)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/query"
	form := url.Values{"q": {"CREATE DATABASE " + strconv.Quote(w.cfg.Database)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w.auth(req)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http %d", resp.StatusCode)
	}
	return nil
}

// classify maps an InfluxDB answer to what the shipper does with the batch.
func classify(status int, retryAfter, msg string, now time.Time) *writeError {
	e := &writeError{status: status, msg: msg, kind: errRetry}
	switch {
	case status == http.StatusRequestEntityTooLarge:
		e.kind = errTooLarge
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		e.kind = errRejected
		if strings.Contains(msg, "partial write") {
			e.kind = errPartial
			// InfluxDB 1.x says dropped=N for points it refused to store but counts
			// lines it could not parse only in the message.
			e.dropped = strings.Count(msg, "unable to parse")
			if m := droppedRe.FindStringSubmatch(msg); m != nil {
				n, _ := strconv.Atoi(m[1])
				e.dropped += n
			}
			e.dropped = max(e.dropped, 1)
		}
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		e.retryAfter = parseRetryAfter(retryAfter, now)
	}
	return e
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 if absent or bad.
var parseRetryAfter = retryafter.Parse
