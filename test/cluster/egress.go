package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The API server's "cluster" traffic (kubelets for logs and exec, and webhook Services, which
// --enable-aggregator-routing resolves to their endpoints' pod IPs) goes through an HTTP CONNECT
// proxy on a unix socket, as it would through Konnectivity. The proxy dials a real node's address or
// one of its pods from inside that node's network namespace, so the API server reaches them while
// the node's addresses never exist in the host's namespace. Anything else is refused: no packet for
// a private address that no node of this run owns leaves the host. Loopback targets (the kwok nodes'
// addresses) are dialled on the host as the API server would without the proxy.

const egressConfigTemplate = `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`

// clusterEgress is the proxy; Cluster.StartRealNode registers each node's prefixes with it.
type clusterEgress struct {
	ln    net.Listener
	mu    sync.Mutex
	route map[netip.Prefix]string // destination prefix → network namespace
}

// startEgress listens on dir/egress.sock and writes the API server's egress selector config; it
// returns the config file's path.
func (c *Cluster) startEgress() (string, error) {
	sock := filepath.Join(c.dir, "egress.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return "", fmt.Errorf("egress proxy: %w", err)
	}
	c.egress = &clusterEgress{ln: ln, route: map[netip.Prefix]string{}}
	go c.egress.serve()
	cfg := filepath.Join(c.dir, "egress-selector.yaml")
	return cfg, os.WriteFile(cfg, []byte(fmt.Sprintf(egressConfigTemplate, sock)), 0o644)
}

func (e *clusterEgress) addRoute(p netip.Prefix, netns string) {
	e.mu.Lock()
	e.route[p] = netns
	e.mu.Unlock()
}

func (e *clusterEgress) removeRoutes(netns string) {
	e.mu.Lock()
	for p, ns := range e.route {
		if ns == netns {
			delete(e.route, p)
		}
	}
	e.mu.Unlock()
}

func (e *clusterEgress) netnsFor(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s is not an IP address and port", addr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, ns := range e.route {
		if p.Contains(ap.Addr()) {
			return ns, nil
		}
	}
	return "", fmt.Errorf("no node of this run has address %s", ap.Addr())
}

func (e *clusterEgress) serve() {
	for {
		conn, err := e.ln.Accept()
		if err != nil {
			return
		}
		go e.handle(conn)
	}
}

// handle answers one CONNECT and splices the connection to its target.
func (e *clusterEgress) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		fmt.Fprint(conn, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var target net.Conn
	if ap, perr := netip.ParseAddrPort(req.Host); perr == nil && ap.Addr().IsLoopback() {
		// kwok nodes report 127.0.0.1: their kubelet endpoints live on the host's loopback.
		target, err = (&net.Dialer{}).DialContext(ctx, "tcp", req.Host)
	} else {
		var ns string
		if ns, err = e.netnsFor(req.Host); err == nil {
			target, err = DialInNetns(ctx, ns, req.Host)
		}
	}
	cancel()
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v", err)
		return
	}
	defer target.Close()
	if _, err := fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent after the request line are in br's buffer: copy from br, not conn.
	go func() {
		_, _ = br.WriteTo(target)
		if tc, ok := target.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = bufio.NewReader(target).WriteTo(conn)
}

func (e *clusterEgress) close() {
	if e != nil {
		e.ln.Close()
	}
}
