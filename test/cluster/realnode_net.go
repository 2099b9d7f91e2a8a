package cluster

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The real node's network: its namespace and bridge, the forwarders that carry its and its pods'
// connections to servers on the host's loopback (the API server, istiod), and the kubernetes
// Service's address for its pods.

func (n *RealNode) setupNetwork() error {
	if err := ipRun("", "netns", "add", n.netns); err != nil {
		return err
	}
	return ipRun(fmt.Sprintf("link set lo up\nlink add %[1]s type bridge\nlink set %[1]s up\naddr add %[2]s/32 dev %[1]s\n",
		realNodeBridge, realNodeIP), "-n", n.netns, "-batch", "-")
}

func ipRun(stdin string, args ...string) error {
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// forwardAPIServer listens on the namespace's 127.0.0.1 at the API server's port and carries each
// connection to the API server on the host's loopback, so the admin kubeconfig works inside too.
func (n *RealNode) forwardAPIServer() error {
	addr := "127.0.0.1:" + strconv.Itoa(n.c.apiPort)
	return n.Forward(addr, addr)
}

// serveKubernetesService makes the kubernetes Service's ClusterIP (where in-cluster clients, such as
// meshwarden installed from its chart, find the API server) lead to the API server: a forwarder on
// the node's IP, and DNAT in the node's namespace for the pods' traffic (prerouting) and the node's
// own (output). This node runs no kube-proxy, and this is the one Service address its pods need;
// the rules go with the namespace when the node stops.
func (n *RealNode) serveKubernetesService() error {
	fwd := net.JoinHostPort(realNodeIP, strconv.Itoa(n.c.apiPort))
	if err := n.Forward(fwd, "127.0.0.1:"+strconv.Itoa(n.c.apiPort)); err != nil {
		return err
	}
	rules := fmt.Sprintf(`table ip meshwarden-node {
	chain prerouting { type nat hook prerouting priority dstnat; ip daddr %[1]s tcp dport 443 dnat to %[2]s; }
	chain output { type nat hook output priority -100; ip daddr %[1]s tcp dport 443 dnat to %[2]s; }
}
`, kubernetesServiceIP, fwd)
	cmd := exec.Command("ip", "netns", "exec", n.netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("the kubernetes Service's address in %s (nft): %v: %s", n.netns, err, out)
	}
	return nil
}

// IP is the node's address, in its network namespace; pods reach it through their default route.
func (n *RealNode) IP() string { return realNodeIP }

// Forward listens on addr inside the node's network namespace and carries each connection to target
// on the host's loopback: how the node and its pods reach a server of the test (istiod, say) without
// that server leaving the host's loopback. It stops with the node.
func (n *RealNode) Forward(addr, target string) error {
	ln, err := ListenInNetns(n.netns, addr)
	if err != nil {
		return fmt.Errorf("forwarder on %s in %s: %w", addr, n.netns, err)
	}
	n.fwds = append(n.fwds, ln)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go splice(conn, target)
		}
	}()
	return nil
}

func splice(c net.Conn, target string) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, c); _ = u.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(c, u)
}
