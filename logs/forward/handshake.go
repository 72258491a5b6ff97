package forward

import (
	"bufio"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Auth is the shared-key handshake of the forward protocol v1, done when the server
// greets a new connection with HELO: the client answers PING with its hostname, a salt and
// a digest of the shared key (and optionally a user and a password digest), the server
// answers PONG with the result and its own digest of the key, which the client checks.
type Auth struct {
	SharedKey    string
	SelfHostname string
	Username     string // optional; sent with a password digest when the server asks for users
	Password     string
}

// sharedKeyDigest is hex(sha512(salt + hostname + nonce + key)), both sides of the handshake.
func sharedKeyDigest(salt, hostname, nonce, key string) string {
	h := sha512.New()
	for _, s := range []string{salt, hostname, nonce, key} {
		_, _ = io.WriteString(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// passwordDigest is hex(sha512(auth_salt + username + password)).
func passwordDigest(authSalt, username, password string) string {
	return sharedKeyDigest(authSalt, username, password, "")
}

// errHELO is returned when the server asks for the handshake and no shared key is set.
var errHELO = errors.New("Fluentd asks for the shared-key handshake (it sent HELO): set LOOKOUT_FLUENTD_SHARED_KEY_FILE to a file holding the key of its <security> section")

// handshake reads the server's HELO and answers it; the caller has set the deadline. It
// reports whether the server keeps the connection open after a message (HELO keepalive).
func (a *Auth) handshake(r *bufio.Reader, w io.Writer) (keepalive bool, err error) {
	helo, err := readValue(r, 0)
	if err != nil {
		return false, fmt.Errorf("forward protocol handshake: waiting for HELO (a shared key is set, so the server must ask for it): %w", err)
	}
	fields, ok := helo.([]any)
	if !ok || len(fields) != 2 || fields[0] != "HELO" {
		return false, fmt.Errorf("forward protocol handshake: want [\"HELO\", {options}] first, got %.100v", helo)
	}
	opts, _ := fields[1].(map[string]any)
	nonce, ok := opts["nonce"].(string)
	if !ok {
		return false, fmt.Errorf("forward protocol handshake: HELO without a nonce")
	}
	authSalt, _ := opts["auth"].(string)
	keepalive, ok = opts["keepalive"].(bool)
	keepalive = keepalive || !ok
	var s [16]byte
	_, _ = rand.Read(s[:])
	salt := hex.EncodeToString(s[:])
	pass := ""
	if authSalt != "" && a.Username != "" {
		pass = passwordDigest(authSalt, a.Username, a.Password)
	}
	ping := appendArrayHeader(nil, 6)
	for _, f := range []string{"PING", a.SelfHostname, salt, sharedKeyDigest(salt, a.SelfHostname, nonce, a.SharedKey), a.Username, pass} {
		ping = appendStr(ping, f)
	}
	if _, err := w.Write(ping); err != nil {
		return false, fmt.Errorf("forward protocol handshake: sending PING: %w", err)
	}
	pong, err := readValue(r, 0)
	if err != nil {
		return false, fmt.Errorf("forward protocol handshake: waiting for PONG: %w", err)
	}
	p, ok := pong.([]any)
	if !ok || len(p) != 5 || p[0] != "PONG" {
		return false, fmt.Errorf("forward protocol handshake: want [\"PONG\", result, reason, hostname, digest], got %.100v", pong)
	}
	if okAuth, _ := p[1].(bool); !okAuth {
		return false, fmt.Errorf("Fluentd refused the shared-key handshake: %q (check LOOKOUT_FLUENTD_SHARED_KEY_FILE, and LOOKOUT_FLUENTD_USERNAME and LOOKOUT_FLUENTD_PASSWORD_FILE if it checks users)", p[2])
	}
	host, _ := p[3].(string)
	digest, _ := p[4].(string)
	if subtle.ConstantTimeCompare([]byte(digest), []byte(sharedKeyDigest(salt, host, nonce, a.SharedKey))) != 1 {
		return false, fmt.Errorf("forward protocol handshake: the server %q answered with a digest that does not match the shared key: it does not know the key of LOOKOUT_FLUENTD_SHARED_KEY_FILE", host)
	}
	return keepalive, nil
}
