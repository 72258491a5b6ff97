package forward

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// tlsFront terminates TLS with a fresh self-signed certificate for 127.0.0.1 and passes
// the bytes on to addr; it returns its address and a pool trusting the certificate.
func tlsFront(t *testing.T, addr string) (string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fluentd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return l.Addr().String(), pool
}

func TestTLS(t *testing.T) {
	rcv := startReceiver(t)
	front, pool := tlsFront(t, rcv.Addr)
	chunk := NewChunkID()
	msg := oneRecord("t", Entry{Time: time.Unix(1700000000, 7), Source: "stdout", Log: []byte("over tls")},
		NewMeta([][2]string{{"container_id", "x"}}), chunk)

	untrusted := newClient(t, Config{Address: front, TLS: &tls.Config{MinVersion: tls.VersionTLS12}, Timeout: 5 * time.Second})
	if err := untrusted.Send(t.Context(), msg, chunk); err == nil {
		t.Fatal("a server certificate nobody trusts was accepted")
	}
	c := newClient(t, Config{Address: front, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Timeout: 5 * time.Second})
	defer c.Close()
	if err := c.Send(t.Context(), msg, chunk); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	recs, _ := rcv.Records()
	for deadline := time.Now().Add(10 * time.Second); len(recs) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, _ = rcv.Records()
	}
	if len(recs) != 1 || string(recs[0].Log()) != "over tls" || recs[0].TimeNS != 1700000000_000000007 || recs[0].Tag != "t" {
		t.Fatalf("records %+v: want the one record, its nanosecond event time and tag", recs)
	}
}
