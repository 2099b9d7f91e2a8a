// Package cluster starts a real, local Kubernetes control plane from the binaries that `make tools`
// builds into bin/: etcd, kube-apiserver (TLS, RBAC and Node authorizers, the default admission
// plugins including the admission webhooks, service-account token signing), kube-controller-manager,
// kube-scheduler and kwok, which plays kubelet for fake nodes so Deployments become Running pods
// without containers.
//
// Everything listens on 127.0.0.1 on free ports, keeps its state and logs in one run directory,
// and runs in its own process group so Stop leaves nothing behind. `make run` (test/devcluster)
// and the end-to-end tests (test/e2e) share it.
//
//	c, err := cluster.Start(ctx, cluster.Options{Dir: "_run/devcluster"})
//	defer c.Stop()
//	out, _, err := c.Kubectl(ctx, "get", "nodes")
package cluster
