package cluster

import (
	"fmt"
	"strings"
)

// The real node's address plan. Every address lives only inside the node's network namespace: the
// node's IP on a bridge of its own (the kubelet refuses a loopback node IP, and this kernel has no
// dummy links), the pods on the CNI bridge.
const (
	realNodeIP      = "10.213.255.1"
	realPodCIDR     = "10.213.0.0/24"
	realPodGateway  = "10.213.0.1"
	realNodeBridge  = "mw-node0"
	realCNIBridge   = "mw-cni0"
	realCNINetwork  = "meshwarden-real-node"
	kubeletPort     = 10250
	kubeletHealthz  = 10248
	containerdNSK8s = "k8s.io"
)

// RealNodeLabel and RealNodeTaint keep other pods on the kwok nodes unless they ask for the real one:
// a pod needs the toleration and, to be sure to land there, the node selector.
const (
	RealNodeLabel = "meshwarden.io/node"
	RealNodeValue = "real"
	RealNodeTaint = "meshwarden.io/real-node"
)

// containerdConfig is containerd 2.x's config (version 3) with every path under the run directory.
// restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and runc fails every sandbox that asks
// for a lower OOM score ("can't get final child's PID from pipe: EOF"). netns_mounts_under_state_dir
// keeps the pods' netns pins out of /var/run/netns.
func containerdConfig(dir, sock, pauseImage, runcPath, cniBin string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = [%[6]q]
  conf_dir = %[7]q

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = %[8]q
  Root = %[9]q
  SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, dir+"/containerd/root", dir+"/containerd/state", sock, sock+".ttrpc", pauseImage, cniBin,
		dir+"/cni/net.d", runcPath, dir+"/containerd/runc")
}

// cniConfig is a bridge network with host-local addresses from realPodCIDR, and loopback.
func cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, realCNINetwork, realCNIBridge, realPodCIDR, realPodGateway)
}

// kubeletConfig authenticates the API server by its client certificate (signed by the cluster's CA)
// and asks the API server whether a caller may act (webhook), never anonymous. cgroups are v1 here:
// failCgroupV1 false, and the cgroupfs driver as containerd uses. The node's pods live under a cgroup
// root of the run's own, so stopping the node removes exactly its cgroups.
func kubeletConfig(caFile, cgroupRoot string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]q
port: %[2]d
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: %[5]q
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
resolvConf: ""
registerWithTaints:
- {key: %[6]q, value: "true", effect: NoSchedule}
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 4s
protectKernelDefaults: false
makeIPTablesUtilChains: false
containerLogMaxSize: 5Mi
`, realNodeIP, kubeletPort, kubeletHealthz, caFile, cgroupRoot, RealNodeTaint)
}

func hostsFile(name string) string {
	return strings.Join([]string{"127.0.0.1 localhost", realNodeIP + " " + name, ""}, "\n")
}

// apiserverKubeletClient is the user the API server presents to kubelets.
const apiserverKubeletClient = "kube-apiserver-kubelet-client"
