//go:build !linux

package jaegerudp

import "net"

// oobSize: no control messages are asked for outside Linux.
const oobSize = 0

// countSocketDrops: SO_RXQ_OVFL is Linux's; elsewhere packets_dropped_socket_full stays 0.
func countSocketDrops(*net.UDPConn) {}

func socketDropped([]byte) (uint32, bool) { return 0, false }
