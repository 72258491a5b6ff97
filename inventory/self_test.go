package inventory

import "testing"

func TestContainerIDFromMountinfo(t *testing.T) {
	id := "4f1c2b7e9a0d3c5b6e8f1a2d4c6b8e0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b"
	in := "1283 1266 0:63 / / rw,relatime master:312 - overlay overlay rw\n" +
		"1290 1283 254:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
	if got := containerIDFromMountinfo(in); got != id {
		t.Errorf("got %q, want %q", got, id)
	}
	if got := containerIDFromMountinfo("25 1 254:1 / / rw - ext4 /dev/vda rw\n"); got != "" {
		t.Errorf("on the host: got %q, want empty", got)
	}
}
