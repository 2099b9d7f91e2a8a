package main

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshwarden/meshwarden/config"
)

// setupGuard registers the config guard on the manager: the /validate handler on its webhook server and
// the leader-elected reconciler. Owned by the guard work (issue 4); until then the guard is absent.
func setupGuard(mgr ctrl.Manager, cfg *config.Config) error {
	_, _ = mgr, cfg
	return nil
}
