package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

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
