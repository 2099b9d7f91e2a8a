//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
)

// originalDst needs netfilter, which only Linux has.
func originalDst(*net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.ErrUnsupported
}
