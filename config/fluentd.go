package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// validate checks the log forwarder's settings (only when it is on).
func (f Fluentd) validate(stateDir string) []error {
	if f.Address == "" {
		return nil
	}
	var errs []error
	bad := func(setting string, value any, allowed string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", setting, fmt.Sprint(value), allowed))
	}
	addr := strings.TrimPrefix(f.Address, "tcp://")
	if p, ok := strings.CutPrefix(f.Address, "unix://"); ok {
		if !strings.HasPrefix(p, "/") {
			bad("fluentd.address (LOOKOUT_FLUENTD_ADDRESS)", f.Address, "want host:port, tcp://host:port or unix:///path/to/socket")
		}
	} else if _, _, err := net.SplitHostPort(addr); err != nil || strings.Contains(addr, "/") {
		bad("fluentd.address (LOOKOUT_FLUENTD_ADDRESS)", f.Address, "want host:port, tcp://host:port or unix:///path/to/socket")
	}
	if _, err := labels.ParseLogTag(f.Tag); err != nil {
		bad("fluentd.tag (LOOKOUT_FLUENTD_TAG)", f.Tag, err.Error())
	}
	if f.BatchSize < 1 || f.BatchSize > 100000 {
		bad("fluentd.batch_size (LOOKOUT_FLUENTD_BATCH_SIZE)", f.BatchSize, "want 1 to 100000 records")
	}
	if f.BufferLimit < f.BatchSize {
		bad("fluentd.buffer_limit (LOOKOUT_FLUENTD_BUFFER_LIMIT)", f.BufferLimit, fmt.Sprintf("want at least the batch size (%d) records", f.BatchSize))
	}
	if f.MaxRecordSize < 1024 || f.MaxRecordSize > 64<<20 {
		bad("fluentd.max_record_size (LOOKOUT_FLUENTD_MAX_RECORD_SIZE)", f.MaxRecordSize, "want 1024 to 67108864 bytes")
	}
	if f.Start != "beginning" && f.Start != "now" {
		bad("fluentd.start (LOOKOUT_FLUENTD_START)", f.Start, "want beginning (a container's whole log) or now (only what it writes from now on)")
	}
	if time.Duration(f.Timeout) < 100*time.Millisecond {
		bad("fluentd.timeout (LOOKOUT_FLUENTD_TIMEOUT)", time.Duration(f.Timeout), "want 100ms or more")
	}
	if !f.TLS && (f.TLSCAFile != "" || f.TLSSkipVerify) {
		bad("fluentd.tls (LOOKOUT_FLUENTD_TLS)", f.TLS, "tls_ca_file and tls_skip_verify need tls=true")
	}
	if f.TLS && strings.HasPrefix(f.Address, "unix://") {
		bad("fluentd.tls (LOOKOUT_FLUENTD_TLS)", f.TLS, "TLS needs a TCP address")
	}
	if f.SharedKeyFile == "" && (f.Username != "" || f.PasswordFile != "" || f.SelfHostname != "") {
		bad("fluentd.shared_key_file (LOOKOUT_FLUENTD_SHARED_KEY_FILE)", "", "username, password_file and self_hostname belong to the shared-key handshake: want a file holding the shared key")
	}
	if (f.Username == "") != (f.PasswordFile == "") {
		bad("fluentd.username (LOOKOUT_FLUENTD_USERNAME)", f.Username, "want both a username and LOOKOUT_FLUENTD_PASSWORD_FILE, or neither")
	}
	if stateDir == "" {
		errs = append(errs, errors.New(`state_dir (LOOKOUT_STATE_DIR)="": the log forwarder keeps its positions there; want a directory`))
	}
	return errs
}

// TLSConfig returns the TLS settings for Fluentd, nil for plain TCP. It reads the CA file.
func (f Fluentd) TLSConfig() (*tls.Config, error) {
	if !f.TLS {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(f.Address, "tcp://"))
	c := &tls.Config{ServerName: host, InsecureSkipVerify: f.TLSSkipVerify, MinVersion: tls.VersionTLS12}
	if f.TLSCAFile != "" {
		pem, err := os.ReadFile(f.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("fluentd.tls_ca_file (LOOKOUT_FLUENTD_TLS_CA_FILE)=%q: %w", f.TLSCAFile, errors.Unwrap(err))
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fluentd.tls_ca_file (LOOKOUT_FLUENTD_TLS_CA_FILE)=%q: no PEM certificate in it", f.TLSCAFile)
		}
	}
	return c, nil
}
