package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The network-namespace tests re-execute this test binary as helper processes: as
// meshwarden-init inside the pod's namespace, and as a client that connects as a given uid/gid.
// TestMain dispatches on helperEnv before the testing package sees the arguments.
const helperEnv = "MESHWARDEN_CAPTURE_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "init":
		if u := os.Getenv("MESHWARDEN_CAPTURE_TEST_UID"); u != "" {
			uid, _ := strconv.Atoi(u)
			if err := syscall.Setuid(uid); err != nil {
				fmt.Fprintln(os.Stderr, "setuid:", err)
				os.Exit(3)
			}
		}
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	case "dial":
		os.Exit(dialHelper())
	}
	os.Exit(m.Run())
}

// dialHelper drops to MWC_UID/MWC_GID, connects to MWC_ADDR and prints the line the server sends
// (or "error: ..."), so the parent sees where the connection landed.
func dialHelper() int {
	if g := os.Getenv("MWC_GID"); g != "" {
		gid, _ := strconv.Atoi(g)
		if err := syscall.Setgroups([]int{}); err != nil {
			fmt.Println("error: setgroups:", err)
			return 1
		}
		if err := syscall.Setgid(gid); err != nil {
			fmt.Println("error: setgid:", err)
			return 1
		}
	}
	if u := os.Getenv("MWC_UID"); u != "" {
		uid, _ := strconv.Atoi(u)
		if err := syscall.Setuid(uid); err != nil {
			fmt.Println("error: setuid:", err)
			return 1
		}
	}
	c, err := net.DialTimeout("tcp", os.Getenv("MWC_ADDR"), 2*time.Second)
	if err != nil {
		fmt.Println("error:", err)
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("error: read:", err)
		return 0
	}
	fmt.Print(line)
	return 0
}

// requireNetns skips unless the test can create namespaces; under CI=true that is a failure.
func requireNetns(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip", "nft"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("network-namespace test needs %s: run it as root after make deps", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipped because CI is not true")
}

func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var nsCounter atomic.Int32

// topo is a pod namespace joined by a veth pair to a peer namespace. The peer also owns the
// "remote" addresses the pod connects to, so traffic that is not captured lands somewhere visible.
// binDir, when set, holds the iptables tools to use (the legacy ones) and goes first in PATH.
type topo struct{ pod, peer, binDir string }

// tool is the path of an iptables tool for this topology.
func (tp topo) tool(name string) string {
	if tp.binDir != "" {
		return filepath.Join(tp.binDir, name)
	}
	return name
}

const (
	podV4, remoteV4, excludedV4 = "10.77.0.2", "10.77.0.9", "10.77.0.8"
	podV6, remoteV6, excludedV6 = "fd77::2", "fd77::9", "fd77::8"
)

// useLegacyIptables points the topology at the iptables-legacy tools through a directory of
// symlinks named like the tools meshwarden-init looks for.
func useLegacyIptables(t *testing.T, tp *topo) {
	t.Helper()
	tp.binDir = t.TempDir()
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, op := range []string{"save", "restore"} {
			target, err := exec.LookPath(fam + "-legacy-" + op)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(tp.binDir, fam+"-"+op)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func newTopo(t *testing.T) topo {
	t.Helper()
	n := nsCounter.Add(1)
	tp := topo{pod: fmt.Sprintf("mwc-%d-%d-pod", os.Getpid(), n), peer: fmt.Sprintf("mwc-%d-%d-peer", os.Getpid(), n)}
	for _, ns := range []string{tp.pod, tp.peer} {
		run(t, "", "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		})
	}
	run(t, "", "ip", "link", "add", "eth0", "netns", tp.pod, "type", "veth", "peer", "name", "eth0", "netns", tp.peer)
	run(t, "link set lo up\nlink set eth0 up\naddr add 10.77.0.2/24 dev eth0\naddr add fd77::2/64 dev eth0 nodad\n",
		"ip", "-n", tp.pod, "-batch", "-")
	run(t, "link set lo up\nlink set eth0 up\naddr add 10.77.0.1/24 dev eth0\naddr add 10.77.0.9/24 dev eth0\n"+
		"addr add 10.77.0.8/24 dev eth0\naddr add fd77::1/64 dev eth0 nodad\naddr add fd77::9/64 dev eth0 nodad\n"+
		"addr add fd77::8/64 dev eth0 nodad\n", "ip", "-n", tp.peer, "-batch", "-")
	// Listeners: the proxy's capture ports and two app ports in the pod, plain servers in the peer.
	for _, network := range []string{"tcp4", "tcp6"} {
		for _, port := range []int{15001, 15006, 15021, 9090} {
			serve(t, tp.pod, network, port, port == 15006)
		}
		for _, port := range []int{8080, 9091} {
			serve(t, tp.peer, network, port, false)
		}
	}
	return tp
}

// serve answers every connection with "<netns role>:<port> <original destination>".
func serve(t *testing.T, ns, network string, port int, transparent bool) {
	t.Helper()
	lc := net.ListenConfig{}
	if transparent {
		// TPROXY only hands connections to sockets with IP_TRANSPARENT, as Envoy's would be.
		lc.Control = func(network, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if network == "tcp6" {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	if network == "tcp6" {
		addr = fmt.Sprintf("[::]:%d", port)
	}
	ln, err := listenIn(ns, network, addr, lc)
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	role := "pod"
	if strings.HasSuffix(ns, "-peer") {
		role = "peer"
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dst, err := originalDst(c.(*net.TCPConn))
			if err != nil {
				dst = c.LocalAddr().(*net.TCPAddr).AddrPort()
			}
			fmt.Fprintf(c, "%s:%d %s\n", role, port, netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()))
			c.Close()
		}
	}()
}

// listenIn opens a listener inside the named namespace. A socket keeps the namespace it was created
// in, so only its creation runs on a thread switched into ns.
func listenIn(ns, network, addr string, lc net.ListenConfig) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked (and is discarded when this goroutine ends) unless it is back
		// in its own namespace.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, lerr := lc.Listen(context.Background(), network, addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, lerr}
	}()
	r := <-ch
	return r.ln, r.err
}

const ip6tSoOriginalDst = 80 // IP6T_SO_ORIGINAL_DST, the IPv6 twin of SO_ORIGINAL_DST

// originalDst asks conntrack where a connection was headed before REDIRECT, as Envoy does.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v4 := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().Is4()
	var out netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if v4 {
			var sa unix.RawSockaddrInet4
			n := uint32(unsafe.Sizeof(sa))
			if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, unix.SO_ORIGINAL_DST,
				uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
				serr = e
				return
			}
			port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
			out = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
			return
		}
		var sa unix.RawSockaddrInet6
		n := uint32(unsafe.Sizeof(sa))
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, ip6tSoOriginalDst,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
			serr = e
			return
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		out = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return out, serr
}

// helperEnviron returns the environment of a helper process. Under -race, a process otherwise
// sleeps a second at exit, and the suite starts hundreds of helpers.
func helperEnviron(kind string) []string {
	return append(os.Environ(), helperEnv+"="+kind, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// initIn runs meshwarden-init (this binary as a helper) in ns and returns its stdout.
func initIn(t *testing.T, tp topo, args ...string) string {
	t.Helper()
	code, stdout, stderr := initResult(t, tp, nil, args...)
	if code != 0 {
		t.Fatalf("meshwarden-init %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// initResult runs meshwarden-init in ns with extra environment and returns what it did.
func initResult(t *testing.T, tp topo, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", tp.pod, self(t)}, args...)...)
	cmd.Env = helperEnviron("init")
	if tp.binDir != "" {
		cmd.Env = append(cmd.Env, "PATH="+tp.binDir+":"+os.Getenv("PATH"))
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("meshwarden-init %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// dialFrom connects from ns to addr as uid/gid (-1 keeps root) and returns where it landed.
func dialFrom(t *testing.T, ns string, uid, gid int, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self(t))
	cmd.Env = append(helperEnviron("dial"), "MWC_ADDR="+addr)
	if uid >= 0 {
		cmd.Env = append(cmd.Env, "MWC_UID="+strconv.Itoa(uid))
	}
	if gid >= 0 {
		cmd.Env = append(cmd.Env, "MWC_GID="+strconv.Itoa(gid))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dial helper: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

var (
	counters    = regexp.MustCompile(`\[\d+:\d+\]`)
	nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)
)

// snapshot is everything meshwarden-init may change in ns: the whole nftables ruleset (which
// also shows iptables-nft rules), the iptables view, the policy rules and the TPROXY table.
func snapshot(t *testing.T, tp topo) string {
	t.Helper()
	ns := tp.pod
	var b strings.Builder
	// iptables-nft counts packets in every rule; traffic must not make snapshots differ.
	b.WriteString(nftCounters.ReplaceAllString(run(t, "", "ip", "netns", "exec", ns, "nft", "list", "ruleset"), "counter"))
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(tp.tool(save)); err != nil {
			continue
		}
		for _, l := range strings.Split(run(t, "", "ip", "netns", "exec", ns, tp.tool(save)), "\n") {
			if !strings.HasPrefix(l, "#") {
				b.WriteString(counters.ReplaceAllString(l, "[0:0]") + "\n")
			}
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		b.WriteString(run(t, "", "ip", "-n", ns, fam, "rule"))
		// Only table 133's routes: other tables change on their own (IPv6 link-local addresses).
		for _, l := range strings.Split(run(t, "", "ip", "-n", ns, fam, "route", "show", "table", "all"), "\n") {
			if strings.Contains(l, "table "+strconv.Itoa(TProxyRouteTable)+" ") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// addForeignRules gives the namespace rules that are not meshwarden's, so the tests prove they
// survive untouched.
func addForeignRules(t *testing.T, tp topo) {
	t.Helper()
	ns := tp.pod
	run(t, "table inet foreign {\n\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n\t\tudp dport 5353 accept\n\t}\n}\n",
		"ip", "netns", "exec", ns, "nft", "-f", "-")
	// The built-in chains meshwarden hooks are declared too: iptables-nft creates them on first
	// use and leaves them (empty) behind, which is iptables-nft's doing, not a leftover rule.
	rules := "*nat\n:OUTPUT ACCEPT [0:0]\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -p udp -m udp --dport 53 -j RETURN\nCOMMIT\n*mangle\n-A PREROUTING -p udp -m udp --dport 53 -j RETURN\nCOMMIT\n"
	for _, restore := range []string{"iptables-restore", "ip6tables-restore"} {
		if _, err := exec.LookPath(tp.tool(restore)); err == nil {
			run(t, rules, "ip", "netns", "exec", ns, tp.tool(restore), "--noflush")
		}
	}
}
