package forward

import (
	"path/filepath"
	"testing"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// startReceiver starts the real forward-protocol receiver (peers/fluentd) for one test.
func startReceiver(t *testing.T) *testpeer.Fluentd {
	t.Helper()
	root, _ := filepath.Abs("../..")
	bin, err := testpeer.FluentdBin(root)
	var rcv *testpeer.Fluentd
	if err == nil {
		rcv, err = testpeer.StartFluentd(bin, t.TempDir())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Stop)
	return rcv
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oneRecord is a Forward message of one record.
func oneRecord(tag string, e Entry, meta Meta, chunk string) []byte {
	return AppendForward(nil, tag, meta, 1, func(int) Entry { return e }, chunk)
}
