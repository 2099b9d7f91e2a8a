// Command meshwarden-init is the injected init container: it programs the pod's network namespace
// so that the application's TCP traffic goes through the Envoy sidecar. All logic lives in the
// capture package; main only wires the process to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshwarden/meshwarden/capture"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := capture.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
