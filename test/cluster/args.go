package cluster

import (
	"path/filepath"
	"strconv"
)

// serviceCIDR is the ClusterIP range; nothing routes to it, Services just need addresses.
const serviceCIDR = "10.96.0.0/16"

// kubernetesServiceIP is the kubernetes Service's ClusterIP, the first of serviceCIDR (the API
// server's certificate names it, pki.go).
const kubernetesServiceIP = "10.96.0.1"

func etcdArgs(dir string, client, peer int) []string {
	c, p := "http://127.0.0.1:"+strconv.Itoa(client), "http://127.0.0.1:"+strconv.Itoa(peer)
	return []string{
		"--name=default", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + c, "--advertise-client-urls=" + c,
		"--listen-peer-urls=" + p, "--initial-advertise-peer-urls=" + p,
		"--initial-cluster=default=" + p,
		// The data is throwaway; skipping fsync makes every write (and the tests) much faster.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
}

func (c *Cluster) apiserverArgs(etcdPort int) []string {
	f := func(name string) string { return filepath.Join(c.dir, name) }
	return []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses loopback addresses, and nothing here needs the
		// "kubernetes" Service to have endpoints.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--tls-cert-file=" + f("apiserver.crt"), "--tls-private-key-file=" + f("apiserver.key"),
		"--client-ca-file=" + f("ca.crt"),
		"--kubelet-client-certificate=" + f("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + f("apiserver-kubelet-client.key"),
		// Reach kubelets by the address they report, not by a name only their own hosts file knows.
		"--kubelet-preferred-address-types=InternalIP",
		// Kubelets and webhook Services (resolved to their endpoints, as there is no kube-proxy) are
		// reached through the egress proxy, which dials inside the real node's namespace.
		"--egress-selector-config-file=" + c.egressConfig,
		"--enable-aggregator-routing=true",
		"--authorization-mode=Node,RBAC",
		// The defaults (which include MutatingAdmissionWebhook and ValidatingAdmissionWebhook) plus
		// NodeRestriction, as kubeadm configures a normal cluster.
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		"--cert-dir=" + f("apiserver-certs"),
		"--v=1",
	}
}

func kcmArgs(dir, kubeconfig string, port int) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--leader-elect=false",
		"--service-account-private-key-file=" + filepath.Join(dir, "sa.key"),
		"--root-ca-file=" + filepath.Join(dir, "ca.crt"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--v=1",
	}
}
