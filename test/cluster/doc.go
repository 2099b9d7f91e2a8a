// Package cluster starts a real, local Kubernetes control plane from the binaries that `make tools`
// builds into bin/: etcd, kube-apiserver (TLS, RBAC and Node authorizers, the default admission
// plugins including the admission webhooks, service-account token signing), kube-controller-manager,
// kube-scheduler and kwok, which plays kubelet for fake nodes so Deployments become Running pods
// without containers.
//
// Everything listens on 127.0.0.1 on free ports, keeps its state and logs (<component>.log) in one
// run directory, and runs in its own process group so Stop leaves nothing behind. Children die with
// the program that started them (parent-death signal), and Start sweeps pidfiles a crashed run left
// in its directory. `make run` (test/devcluster), the end-to-end tests (test/e2e) and the chart
// tests share it.
//
//	c, err := cluster.Start(ctx, cluster.Options{Dir: "_run/devcluster"}) // Dir "" = temp dir
//	defer c.Stop()
//	c.InstallIstioCRDs(ctx)
//	m, err := c.StartMeshwarden(ctx, cluster.MeshwardenOptions{}) // builds ./cmd/meshwarden
//	err = c.RegisterWebhooks(ctx, m.WebhookOptions())            // url https://127.0.0.1:<port>/inject
//	out, stderr, err := c.Kubectl(ctx, "get", "pods", "-A")
//	ist, err := cluster.StartIstiod(ctx, c, cluster.IstiodOptions{})  // needs `make istio-tools`
//	root, err := ist.RootCertPEM(ctx, "shop")                           // xDS+CA: ist.SecureGRPCAddr()
//
// Other entry points: Kubeconfig, RESTConfig, Client, KubectlInput, CreateNamespace (waits for the
// default ServiceAccount), RestartAPIServer, Meshwarden.Stop/Start (failure-policy tests),
// MutatingWebhookConfiguration/ValidatingWebhookConfiguration (the objects alone), MissingTools,
// SweepStale, BinDir, RepoRoot, MissingIstioTools and IstioVersion.
package cluster
