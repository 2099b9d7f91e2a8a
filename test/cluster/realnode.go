package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RealNodeOptions configures StartRealNode.
type RealNodeOptions struct {
	// Name is the node's name; default "real-node-0".
	Name string
	// Images are image tarballs (docker-archive or OCI) imported into the node before the kubelet
	// starts: the node pulls nothing, so every image a pod uses must be among them.
	Images []string
	// PauseImage is the sandbox image's reference; it must be in one of Images.
	PauseImage string
}

// NodeTools are the programs a real node runs, built by `make node-tools`, and the Debian packages'.
var NodeTools = []string{"kubelet", "containerd", "ctr", "containerd-shim-runc-v2"}

// MissingNodeTools lists what StartRealNode needs and this machine lacks: root, the node tools in
// binDir, runc and the CNI plugins (make deps installs both), and the util-linux programs.
func MissingNodeTools(binDir string) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, t := range NodeTools {
		if _, err := os.Stat(filepath.Join(binDir, t)); err != nil {
			missing = append(missing, t)
		}
	}
	for _, t := range []string{"runc", "ip", "nsenter", "unshare", "mount", "nft"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		missing = append(missing, "containernetworking-plugins")
	}
	return missing
}

// cniBinDir is where Debian's containernetworking-plugins installs the plugins.
const cniBinDir = "/usr/lib/cni"

// RealNode is a node that runs containers: containerd with runc and the CNI bridge plugin, and a
// kubelet registered with the cluster. Everything it touches is the run's own: a network namespace
// (the node's IP, its bridges and its pods never exist in the host's), a mount namespace in which
// /var/lib, /var/log and /run are directories of the run and /etc/hosts names the node, and a cgroup
// root. The kubelet reaches the API server through a forwarder on the namespace's loopback.
type RealNode struct {
	c          *Cluster
	name, dir  string
	netns      string
	holder     *process // keeps the mount namespace alive; every node process joins it
	containerd *process
	kubelet    *process
	cgroupRoot string
	fwds       []net.Listener
	sock       string
}

// StartRealNode starts a real node and waits until it is Ready. On error everything already set up
// is undone.
func (c *Cluster) StartRealNode(ctx context.Context, opts RealNodeOptions) (_ *RealNode, err error) {
	if missing := MissingNodeTools(c.binDir); len(missing) > 0 {
		return nil, fmt.Errorf("a real node needs %v: run `make deps node-tools` as root", missing)
	}
	if opts.Name == "" {
		opts.Name = "real-node-0"
	}
	id := strconv.Itoa(os.Getpid())
	n := &RealNode{c: c, name: opts.Name, dir: filepath.Join(c.dir, "realnode"), netns: "mw-node-" + id,
		cgroupRoot: "/meshwarden-node-" + id}
	n.sock = filepath.Join(n.dir, "containerd", "containerd.sock")
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	for _, d := range []string{"containerd/root", "containerd/state", "containerd/runc", "cni/net.d", "fs/var-lib", "fs/var-log", "fs/run", "kubelet"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	c.logf("real node %s: network namespace %s, node IP %s, pods %s", n.name, n.netns, realNodeIP, realPodCIDR)
	if err := n.setupNetwork(); err != nil {
		return nil, err
	}
	if err := n.forwardAPIServer(); err != nil {
		return nil, err
	}
	if err := n.serveKubernetesService(); err != nil {
		return nil, err
	}
	if err := n.setupMounts(); err != nil {
		return nil, err
	}
	if err := n.setupCgroups(); err != nil {
		return nil, err
	}
	if err := n.writeConfig(opts.PauseImage); err != nil {
		return nil, err
	}
	if n.containerd, err = n.run("containerd", filepath.Join(c.binDir, "containerd"), "--config", filepath.Join(n.dir, "containerd.toml")); err != nil {
		return nil, err
	}
	if err := poll(ctx, 30*time.Second, n.containerd, func(context.Context) error {
		_, err := os.Stat(n.sock)
		return err
	}); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	for _, img := range opts.Images {
		if out, err := n.Ctr(ctx, "images", "import", img); err != nil {
			return nil, fmt.Errorf("ctr images import %s: %v\n%s", img, err, out)
		}
	}
	if err := n.authorizeAPIServer(ctx); err != nil {
		return nil, err
	}
	kubeconfig, err := n.kubeletKubeconfig()
	if err != nil {
		return nil, err
	}
	c.logf("real node %s: starting the kubelet", n.name)
	if n.kubelet, err = n.run("kubelet", filepath.Join(c.binDir, "kubelet"),
		"--config="+filepath.Join(n.dir, "kubelet.yaml"), "--kubeconfig="+kubeconfig,
		"--container-runtime-endpoint=unix://"+n.sock, "--node-ip="+realNodeIP, "--hostname-override="+n.name,
		"--node-labels="+RealNodeLabel+"="+RealNodeValue, "--v=1"); err != nil {
		return nil, err
	}
	if err := poll(ctx, 2*time.Minute, n.kubelet, func(ctx context.Context) error {
		node, err := c.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(node) {
			return fmt.Errorf("node %s is not Ready yet", n.name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("real node %s: %w (kubelet log: %s)", n.name, err, n.kubelet.logFile())
	}
	c.logf("real node %s is Ready", n.name)
	c.egress.addRoute(netip.MustParsePrefix(realNodeIP+"/32"), n.netns)
	c.egress.addRoute(netip.MustParsePrefix(realPodCIDR), n.netns)
	c.realNodes = append(c.realNodes, n)
	return n, nil
}

// Name is the node's name.
func (n *RealNode) Name() string { return n.name }

// Netns is the node's network namespace (in /run/netns): `ip netns exec` reaches the node and,
// through its bridge, its pods.
func (n *RealNode) Netns() string { return n.netns }

// Ctr runs ctr against the node's containerd, in the Kubernetes namespace.
func (n *RealNode) Ctr(ctx context.Context, args ...string) (string, error) {
	return n.exec(ctx, filepath.Join(n.c.binDir, "ctr"), append([]string{"--address", n.sock, "-n", containerdNSK8s}, args...)...)
}

// setupMounts starts the process that holds the node's mount namespace, private to it, and mounts
// the run's directories where the kubelet and containerd keep state they cannot be told to keep
// elsewhere (device plugins, pod logs, CNI results, shim sockets, iptables' lock).
func (n *RealNode) setupMounts() error {
	// nsenter, not `ip netns exec`: the latter mounts a fresh sysfs over /sys, and with it go the
	// cgroup mounts under /sys/fs/cgroup that the kubelet and runc need.
	n.holder = &process{name: "realnode-ns", path: "nsenter", dir: n.c.dir,
		args: []string{"--net=/run/netns/" + n.netns, "--", "unshare", "--mount", "--propagation", "private", "sleep", "infinity"}}
	if err := n.holder.start(); err != nil {
		return err
	}
	// The holder's mount namespace exists once unshare has exec'd sleep.
	deadline := time.Now().Add(5 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.holder.cmd.Process.Pid))
		if strings.HasSuffix(exe, "/sleep") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the mount namespace holder did not start: %s", tail(n.holder.logFile(), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
	hosts := filepath.Join(n.dir, "hosts")
	if err := os.WriteFile(hosts, []byte(hostsFile(n.name)), 0o644); err != nil {
		return err
	}
	for _, m := range [][2]string{{"fs/var-lib", "/var/lib"}, {"fs/var-log", "/var/log"}, {"fs/run", "/run"}} {
		if out, err := n.exec(context.Background(), "mount", "--bind", filepath.Join(n.dir, m[0]), m[1]); err != nil {
			return fmt.Errorf("mount %s on %s in the node's mount namespace: %v %s", m[0], m[1], err, out)
		}
	}
	if out, err := n.exec(context.Background(), "mount", "--bind", hosts, "/etc/hosts"); err != nil {
		return fmt.Errorf("mount the node's hosts file: %v %s", err, out)
	}
	return nil
}

// nsenterArgs enter the node's network and mount namespaces.
func (n *RealNode) nsenterArgs() []string {
	return []string{"--net=/run/netns/" + n.netns, fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.holder.cmd.Process.Pid), "--"}
}

// run starts a node program inside the node's namespaces.
func (n *RealNode) run(name, path string, args ...string) (*process, error) {
	p := &process{name: name, path: "nsenter", args: append(append(n.nsenterArgs(), path), args...), dir: n.c.dir}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// exec runs a short command inside the node's namespaces.
func (n *RealNode) exec(ctx context.Context, path string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "nsenter", append(append(n.nsenterArgs(), path), args...)...).CombinedOutput()
	return string(out), err
}

// cgroupDirs are the node's cgroup root in every hierarchy: the v1 ones, mounted one controller
// each here (the kubelet requires its root in every one it uses), and the v2 one of a hybrid layout
// (/sys/fs/cgroup/unified), where the kubelet and runc create cgroups too.
func (n *RealNode) cgroupDirs() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, filepath.Join(d, n.cgroupRoot))
		}
	}
	return out
}

func (n *RealNode) setupCgroups() error {
	for _, d := range n.cgroupDirs() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup root %s: %w", d, err)
		}
		if filepath.Base(filepath.Dir(d)) == "cpuset" {
			// A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
				if err == nil {
					err = os.WriteFile(filepath.Join(d, f), b, 0o644)
				}
				if err != nil {
					return fmt.Errorf("cgroup %s/%s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

func (n *RealNode) writeConfig(pauseImage string) error {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	files := map[string]string{
		"containerd.toml":                  containerdConfig(n.dir, n.sock, pauseImage, runc, cniBinDir),
		"cni/net.d/10-meshwarden.conflist": cniConfig(),
		"kubelet.yaml":                     kubeletConfig(filepath.Join(n.c.dir, "ca.crt"), n.cgroupRoot),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kubeletKubeconfig gives the kubelet its own identity, system:node:<name>, so the Node authorizer
// and NodeRestriction treat it as they treat any node.
func (n *RealNode) kubeletKubeconfig() (string, error) {
	kp, err := n.c.ca.Client("system:node:"+n.name, "system:nodes")
	if err != nil {
		return "", err
	}
	path := filepath.Join(n.dir, "kubelet.kubeconfig")
	return path, clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"local": {Server: n.c.rest.Host, CertificateAuthorityData: n.c.ca.CertPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"kubelet": {ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}},
		Contexts:       map[string]*clientcmdapi.Context{"local": {Cluster: "local", AuthInfo: "kubelet"}},
		CurrentContext: "local",
	}, path)
}

// authorizeAPIServer lets the API server's kubelet client identity use the kubelet API (logs, exec,
// port-forward), as kubeadm binds it.
func (n *RealNode) authorizeAPIServer(ctx context.Context) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "meshwarden-dev:apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: apiserverKubeletClient}},
	}
	if _, err := n.c.client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Stop stops the kubelet and containerd, kills every process left in the node's namespaces (the
// shims and the pods' containers), and removes the namespaces and cgroups: nothing of the node
// remains on the host. It is safe to call more than once.
func (n *RealNode) Stop() {
	if n.c.egress != nil {
		n.c.egress.removeRoutes(n.netns)
	}
	if n.kubelet != nil {
		n.kubelet.stop(10 * time.Second)
	}
	if n.containerd != nil {
		n.containerd.stop(10 * time.Second)
	}
	// Shims reparent away from containerd: find them by their network namespace. The pods' processes
	// have network namespaces of their own, but all of them live in the node's cgroup tree.
	n.killNetnsProcesses()
	n.killCgroupProcesses()
	if n.holder != nil {
		n.holder.stop(2 * time.Second) // the mount namespace and its mounts go with its last process
		n.holder = nil
	}
	for _, ln := range n.fwds {
		ln.Close()
	}
	n.fwds = nil
	_ = exec.Command("ip", "netns", "del", n.netns).Run()
	n.removeCgroups()
}

// killNetnsProcesses kills every process whose network namespace is the node's.
func (n *RealNode) killNetnsProcesses() {
	target, err := os.Stat("/run/netns/" + n.netns)
	if err != nil {
		return
	}
	tst, ok := target.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	for round := 0; round < 20; round++ {
		procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
		found := false
		for _, p := range procs {
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || st.Ino != tst.Ino || st.Dev != tst.Dev {
				continue
			}
			pid, err := strconv.Atoi(strings.Split(p, "/")[2])
			if err != nil || (n.holder != nil && n.holder.cmd != nil && pid == n.holder.cmd.Process.Pid) {
				continue
			}
			found = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killCgroupProcesses kills every process in the node's cgroup trees until none is left.
func (n *RealNode) killCgroupProcesses() {
	for round := 0; round < 50; round++ {
		found := false
		for _, root := range n.cgroupDirs() {
			_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				if err != nil || fi.IsDir() || fi.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						found = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				return nil
			})
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroups removes the node's cgroup trees, deepest first; a cgroup goes once its processes have.
func (n *RealNode) removeCgroups() {
	for _, root := range n.cgroupDirs() {
		var dirs []string
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 20; try++ { // a cgroup lingers briefly after its last process
				if err := os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}
