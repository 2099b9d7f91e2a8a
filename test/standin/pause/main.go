// Command pause is a TEST STAND-IN for Kubernetes' pause image (registry.k8s.io/pause), the sandbox
// container that holds a pod's namespaces on the real node of the tests. It is never shipped: it
// exists because that image is C, and `make images` builds every test image from Go, without Docker
// or a registry.
//
// Like the original it does nothing but wait: it exits 0 on SIGTERM or SIGINT, and reaps orphans,
// since it is PID 1 of pods that share their process namespace. With --exit it exits 0 at once,
// so that tests also have an image for a container that completes, such as an init container.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--exit" {
		os.Exit(0)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	os.Exit(pause(sigs))
}

// pause reaps on SIGCHLD and returns the exit code on any other signal.
func pause(sigs <-chan os.Signal) int {
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		reap()
	}
	return 0
}

// reap collects every child that has exited. One SIGCHLD can stand for several, as signals of a
// kind are merged while pending.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
