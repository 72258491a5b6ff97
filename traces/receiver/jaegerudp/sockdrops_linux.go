package jaegerudp

import (
	"encoding/binary"
	"net"
	"syscall"
)

// oobSize holds the one control message asked for: SO_RXQ_OVFL's uint32.
var oobSize = syscall.CmsgSpace(4)

// countSocketDrops asks the kernel to tell, with every packet read from c, how many
// packets it has dropped on c's receive buffer so far (SO_RXQ_OVFL, Linux 2.6.33).
func countSocketDrops(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
	})
}

// socketDropped reads the drop count from a packet's control messages.
func socketDropped(oob []byte) (uint32, bool) {
	if len(oob) == 0 {
		return 0, false
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}
