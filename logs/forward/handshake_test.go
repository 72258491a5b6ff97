package forward

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Vectors computed with sha512sum, e.g.
// printf 'salt0123agent-1\x00\xffN0ncek3y' | sha512sum
func TestHandshakeDigests(t *testing.T) {
	nonce := "\x00\xffN0nce" // binary, as Fluentd's random nonce is
	for _, c := range []struct{ got, want string }{
		{sharedKeyDigest("salt0123", "agent-1", nonce, "k3y"),
			"d93f19b298c74c64946e6349d48a3b6862b347ec0f520ddb22ae5eb40fd413f486c431fcbe937794f8dda3778f05b4b7bc972a0f4fa59a897236a6aa77134668"},
		{sharedKeyDigest("salt0123", "fluentd-a", nonce, "k3y"),
			"b0fa0ec5e5b1745d568f5c68b17092dbcca4e603e1c510ad1063459747423f578ba755463cdf5e6878834a786a791f4d548039b127e4333642bf6a8708c86cfb"},
		{passwordDigest("aUthSalt", "alice", "pa55"),
			"01184245b6c92321f967830d95d5ae42ca1295c4ea1bd88c91cad1d4267b372065640ac9df6065d1629d9b7713f68afbcb7a8e0c53b48c4ee3db9a0bb7ad303a"},
	} {
		if c.got != c.want {
			t.Errorf("digest %s, want %s", c.got, c.want)
		}
	}
}

// authServer is the server side of the handshake, as Fluentd's in_forward does it with
// <security>: HELO with a binary nonce and user salt, check PING, answer PONG. After a
// good handshake it passes the connection through to the receiver at upstream.
type authServer struct {
	key, user, pass string
	pongKey         string // the key the server's own digest is made with (a server that does not know the key: another)
	upstream        string
	oneShot         bool          // HELO says keepalive false
	helos           *atomic.Int32 // counts the handshakes, if set
}

func (s authServer) start(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
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
			go s.serve(c)
		}
	}()
	return l.Addr().String()
}

func appendBin(b []byte, s string) []byte { return append(append(b, 0xc4, byte(len(s))), s...) }

func (s authServer) serve(c net.Conn) {
	defer c.Close()
	nonce, userSalt := "\x00\xffN0nce", "aUthSalt"
	helo := appendArrayHeader(nil, 2)
	helo = appendStr(helo, "HELO")
	helo = appendMapHeader(helo, 3)
	helo = appendBin(appendStr(helo, "nonce"), nonce)
	helo = appendBin(appendStr(helo, "auth"), userSalt)
	helo = append(appendStr(helo, "keepalive"), map[bool]byte{true: 0xc2, false: 0xc3}[s.oneShot])
	if _, err := c.Write(helo); err != nil {
		return
	}
	if s.helos != nil {
		s.helos.Add(1)
	}
	r := bufio.NewReader(c)
	v, err := readValue(r, 0)
	ping, _ := v.([]any)
	if err != nil || len(ping) != 6 || ping[0] != "PING" {
		return
	}
	host, salt, digest, user, pass := ping[1].(string), ping[2].(string), ping[3].(string), ping[4].(string), ping[5].(string)
	pong := appendArrayHeader(nil, 5)
	pong = appendStr(pong, "PONG")
	switch {
	case digest != sharedKeyDigest(salt, host, nonce, s.key):
		pong = appendStr(appendStr(appendStr(append(pong, 0xc2), "shared_key mismatch"), ""), "")
	case s.user != "" && (user != s.user || pass != passwordDigest(userSalt, s.user, s.pass)):
		pong = appendStr(appendStr(appendStr(append(pong, 0xc2), "username/password mismatch"), ""), "")
	default:
		pong = appendStr(appendStr(append(pong, 0xc3), ""), "fluentd-a")
		pong = appendStr(pong, sharedKeyDigest(salt, "fluentd-a", nonce, s.pongKey))
	}
	if _, err := c.Write(pong); err != nil || pong[6] == 0xc2 || s.upstream == "" {
		return
	}
	u, err := net.Dial("tcp", s.upstream)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, r); u.Close() }()
	_, _ = io.Copy(c, u)
}

// TestHandshake: a server that asks for the shared key (in front of the real receiver)
// refuses a wrong key or password and one without a key, a server that does not know the
// key is refused by the client, and the right key and password deliver the record.
func TestHandshake(t *testing.T) {
	rcv := startReceiver(t)
	addr := authServer{key: "k3y", pongKey: "k3y", user: "alice", pass: "pa55", upstream: rcv.Addr}.start(t)
	liar := authServer{key: "k3y", pongKey: "guessed", upstream: rcv.Addr}.start(t)
	chunk := NewChunkID()
	msg := oneRecord("t", Entry{Time: time.Unix(1700000000, 7), Source: "stdout", Log: []byte("with key")},
		NewMeta([][2]string{{"container_id", "x"}}), chunk)

	for _, c := range []struct {
		addr string
		auth *Auth
		want string
	}{
		{addr, nil, "set LOOKOUT_FLUENTD_SHARED_KEY_FILE"},
		{addr, &Auth{SharedKey: "wrong-key", SelfHostname: "agent-1", Username: "alice", Password: "pa55"}, `refused the shared-key handshake: "shared_key mismatch"`},
		{addr, &Auth{SharedKey: "k3y", SelfHostname: "agent-1", Username: "alice", Password: "wrong-pass"}, `"username/password mismatch"`},
		{liar, &Auth{SharedKey: "k3y", SelfHostname: "agent-1"}, `server "fluentd-a" answered with a digest that does not match the shared key`},
	} {
		cn := newClient(t, Config{Address: c.addr, Auth: c.auth, Timeout: 5 * time.Second})
		err := cn.Send(t.Context(), msg, chunk)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("auth %+v: error %v, want one saying %q", c.auth, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "wrong-") || strings.Contains(err.Error(), "pa55")) {
			t.Errorf("the error shows a secret: %v", err)
		}
		if c.auth == nil && !errors.Is(err, errHELO) {
			t.Errorf("no key: error %v, want errHELO", err)
		}
		cn.Close()
	}
	if recs, _ := rcv.Records(); len(recs) != 0 {
		t.Fatalf("records %+v arrived through a failed handshake", recs)
	}

	c := newClient(t, Config{Address: addr, Auth: &Auth{SharedKey: "k3y", SelfHostname: "agent-1", Username: "alice", Password: "pa55"}, Timeout: 5 * time.Second})
	defer c.Close()
	for i := 0; i < 2; i++ { // the second message reuses the connection (keepalive)
		if err := c.Send(t.Context(), msg, chunk); err != nil {
			t.Fatalf("send %d with the right key: %v", i, err)
		}
	}
	recs, _ := rcv.Records()
	for deadline := time.Now().Add(10 * time.Second); len(recs) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, _ = rcv.Records()
	}
	if len(recs) != 2 || string(recs[0].Log()) != "with key" || recs[0].Tag != "t" {
		t.Fatalf("records %+v: want the record twice", recs)
	}
}

// TestHandshakeKeepalive: a server that says keepalive false gets a new connection, and a
// new handshake, for each message; one that keeps connections gets one handshake.
func TestHandshakeKeepalive(t *testing.T) {
	rcv := startReceiver(t)
	e := Entry{Time: time.Unix(1700000000, 0), Source: "stdout", Log: []byte("x")}
	for _, oneShot := range []bool{false, true} {
		var helos atomic.Int32
		addr := authServer{key: "k3y", pongKey: "k3y", upstream: rcv.Addr, oneShot: oneShot, helos: &helos}.start(t)
		c := newClient(t, Config{Address: addr, Auth: &Auth{SharedKey: "k3y", SelfHostname: "agent-1"}, Timeout: 5 * time.Second})
		for i := 0; i < 3; i++ {
			chunk := NewChunkID()
			if err := c.Send(t.Context(), oneRecord("t", e, Meta{}, chunk), chunk); err != nil {
				t.Fatalf("keepalive %v, send %d: %v", !oneShot, i, err)
			}
		}
		c.Close()
		if want := map[bool]int32{false: 1, true: 3}[oneShot]; helos.Load() != want {
			t.Errorf("keepalive %v: %d handshakes for 3 messages, want %d", !oneShot, helos.Load(), want)
		}
	}
}

// TestReadValue: the MessagePack forms of the handshake decode; truncated, unknown and too
// deeply nested input is an error.
func TestReadValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"\x05", "5"},
		{"\xff", "-1"},
		{"\xd1\xff\x38", "-200"},
		{"\xce\x00\x01\x00\x00", "65536"},
		{"\xc3", "true"},
		{"\xc0", "<nil>"},
		{"\xc4\x02\x00\xff", "\"\\x00\\xff\""},
		{"\x92\xa4HELO\x81\xa5nonce\xa1n", `[]interface {}{"HELO", map[string]interface {}{"nonce":"n"}}`},
	} {
		v, err := readValue(bufio.NewReader(strings.NewReader(c.in)), 0)
		got := fmt.Sprintf("%#v", v)
		if err != nil || got != c.want {
			t.Errorf("readValue(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "\x92\xa4HELO", "\xa5abc", "\xcd\x01", "\xca\x00\x00\x00\x00",
		"\x91\x91\x91\x91\x91\x91\x90", "\x81\x01\x02"} {
		if v, err := readValue(bufio.NewReader(strings.NewReader(in)), 0); err == nil {
			t.Errorf("readValue(%q) = %v, want an error", in, v)
		}
	}
}
