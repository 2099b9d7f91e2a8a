package cluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a thread switched into the named network namespace (/run/netns/<ns>). Sockets
// keep the namespace they were created in, so a listener or connection made in fn stays there after
// fn returns. A thread that cannot switch back stays locked and is discarded with its goroutine.
func InNetns(ns string, fn func() error) error {
	return InNetnsPath(filepath.Join("/run/netns", ns), fn)
}

// InNetnsPath is InNetns for a namespace given by path, such as /proc/<pid>/ns/net of a pod's process.
func InNetnsPath(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// ListenInNetns opens a TCP listener inside the namespace.
func ListenInNetns(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// DialInNetns opens a TCP connection from inside the namespace.
func DialInNetns(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}
