package capture

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dialCase is one connection and where it must land: "<role>:<port> <original destination>".
type dialCase struct {
	name     string
	from     string // "pod" or "peer"
	uid, gid int    // -1: root
	addr     string
	want     string
}

func hostPort(host, port string) string { return net.JoinHostPort(host, port) }

// family addresses, so every case runs for IPv4 and IPv6 alike.
type addrs struct{ name, pod, remote, excluded, loopback string }

var families = []addrs{
	{"v4", podV4, remoteV4, excludedV4, "127.0.0.1"},
	{"v6", podV6, remoteV6, excludedV6, "::1"},
}

// defaultCases hold after meshwarden-init with default flags.
func defaultCases(a addrs) []dialCase {
	remote := hostPort(a.remote, "8080")
	return []dialCase{
		{"app uid 1000 is redirected to 15001", "pod", 1000, 1000, remote, "pod:15001 " + remote},
		{"root app is redirected too", "pod", -1, -1, remote, "pod:15001 " + remote},
		{"proxy uid 1337 is not redirected", "pod", 1337, 1000, remote, "peer:8080 " + remote},
		{"proxy gid 1337 is not redirected", "pod", 1000, 1337, remote, "peer:8080 " + remote},
		{"loopback is not redirected", "pod", 1000, 1000, hostPort(a.loopback, "9090"), "pod:9090 " + hostPort(a.loopback, "9090")},
		{"inbound lands on 15006", "peer", -1, -1, hostPort(a.pod, "8080"), "pod:15006 " + hostPort(a.pod, "8080")},
		{"proxy health port is not captured", "peer", -1, -1, hostPort(a.pod, "15021"), "pod:15021 " + hostPort(a.pod, "15021")},
	}
}

// exclusionFlags narrow the defaults; exclusionCases hold after them.
var exclusionFlags = []string{
	"--exclude-outbound-cidrs", excludedV4 + "/32," + excludedV6 + "/128",
	"--exclude-outbound-ports", "9091", "--exclude-inbound-ports", "9090",
}

func exclusionCases(a addrs) []dialCase {
	remote := hostPort(a.remote, "8080")
	return []dialCase{
		{"excluded CIDR is not redirected", "pod", 1000, 1000, hostPort(a.excluded, "8080"), "peer:8080 " + hostPort(a.excluded, "8080")},
		{"excluded port is not redirected", "pod", 1000, 1000, hostPort(a.remote, "9091"), "peer:9091 " + hostPort(a.remote, "9091")},
		{"others still redirected", "pod", 1000, 1000, remote, "pod:15001 " + remote},
		{"excluded inbound port is not captured", "peer", -1, -1, hostPort(a.pod, "9090"), "pod:9090 " + hostPort(a.pod, "9090")},
		{"other inbound still captured", "peer", -1, -1, hostPort(a.pod, "8080"), "pod:15006 " + hostPort(a.pod, "8080")},
	}
}

// uncapturedCases hold when nothing is programmed.
func uncapturedCases(a addrs) []dialCase {
	remote := hostPort(a.remote, "8080")
	return []dialCase{{"app goes straight out", "pod", 1000, 1000, remote, "peer:8080 " + remote}}
}

func checkCases(t *testing.T, tp topo, cases func(addrs) []dialCase) {
	t.Helper()
	for _, a := range families {
		for _, c := range cases(a) {
			ns := tp.pod
			if c.from == "peer" {
				ns = tp.peer
			}
			if got := dialFrom(t, ns, c.uid, c.gid, c.addr); got != c.want {
				t.Errorf("%s %s (uid %d gid %d from %s to %s): landed at %q, want %q",
					a.name, c.name, c.uid, c.gid, c.from, c.addr, got, c.want)
			}
		}
	}
}

func diffSnapshots(t *testing.T, what, want, got string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: ruleset differs (-want +got):\n%s", what, diff)
	}
}

// TestCaptureInNetns proves the Done-when list of issue 5 for both backends: the same cases,
// idempotence, convergence to new flags, cleanup back to the exact prior ruleset, TPROXY and NONE.
func TestCaptureInNetns(t *testing.T) {
	requireNetns(t)
	variants := []struct {
		name, backend string
		tools         []string
	}{
		{"nftables", "nftables", nil},
		{"iptables", "iptables", []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"}},
		{"iptables-legacy", "iptables", []string{"iptables-legacy-restore", "ip6tables-legacy-restore", "iptables-legacy-save", "ip6tables-legacy-save"}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			requireNetns(t, v.tools...)
			t.Parallel()
			backend := v.backend
			tp := newTopo(t)
			if v.name == "iptables-legacy" {
				useLegacyIptables(t, &tp)
			}
			addForeignRules(t, tp)
			before := snapshot(t, tp)
			be := "--backend=" + backend

			t.Run("NONE programs nothing", func(t *testing.T) {
				initIn(t, tp, be, "--mode", "NONE")
				diffSnapshots(t, "after --mode NONE", before, snapshot(t, tp))
				checkCases(t, tp, uncapturedCases)
			})

			t.Run("REDIRECT defaults", func(t *testing.T) {
				initIn(t, tp, be)
				checkCases(t, tp, defaultCases)
			})

			args := slices.Concat([]string{be}, exclusionFlags)
			tproxy := slices.Concat(args, []string{"--mode", "TPROXY"})
			var redirected string // the ruleset with args, for the mode switch below
			t.Run("REDIRECT exclusions, rerun converges", func(t *testing.T) {
				initIn(t, tp, args...)
				checkCases(t, tp, exclusionCases)
				checkCases(t, tp, defaultCases)
			})

			t.Run("idempotent and dry-run matches", func(t *testing.T) {
				redirected = snapshot(t, tp)
				initIn(t, tp, args...)
				diffSnapshots(t, "second run", redirected, snapshot(t, tp))
				checkDryRunMatches(t, tp, backend, slices.Concat(args, []string{"--dry-run"}))
			})

			t.Run("cleanup restores the ruleset", func(t *testing.T) {
				initIn(t, tp, be, "--cleanup")
				diffSnapshots(t, "after --cleanup", before, snapshot(t, tp))
				checkCases(t, tp, uncapturedCases)
				initIn(t, tp, be, "--cleanup") // nothing left to remove is fine
				diffSnapshots(t, "after a second --cleanup", before, snapshot(t, tp))
			})

			t.Run("TPROXY, and switching modes both ways", func(t *testing.T) {
				initIn(t, tp, args...)
				initIn(t, tp, tproxy...)
				checkCases(t, tp, exclusionCases)
				checkCases(t, tp, defaultCases)
				first := snapshot(t, tp)
				if !strings.Contains(first, "fwmark 0x539 lookup 133") {
					t.Errorf("TPROXY policy rule missing:\n%s", first)
				}
				initIn(t, tp, tproxy...)
				diffSnapshots(t, "second TPROXY run", first, snapshot(t, tp))
				checkDryRunMatches(t, tp, backend, slices.Concat(tproxy, []string{"--dry-run"}))
				initIn(t, tp, args...)
				diffSnapshots(t, "back to REDIRECT", redirected, snapshot(t, tp))
				initIn(t, tp, tproxy...)
				initIn(t, tp, be, "--cleanup")
				diffSnapshots(t, "after TPROXY --cleanup", before, snapshot(t, tp))
			})
		})
	}
}

// TestFailureIsOneLine checks that a run that cannot program anything exits 1 with one line and
// leaves the namespace as it was.
func TestFailureIsOneLine(t *testing.T) {
	requireNetns(t)
	tp := newTopo(t)
	before := snapshot(t, tp)
	tests := map[string]struct {
		args []string
		env  []string
		want string
	}{
		"iptables missing": {
			args: []string{"--backend", "iptables"},
			env:  []string{"PATH=/nonexistent"},
			want: `meshwarden-init: could not program REDIRECT capture with iptables (rolled back): iptables-save: exec: "iptables-save": executable file not found in $PATH`,
		},
		"not privileged": {
			args: []string{"--backend", "nftables"},
			env:  []string{"MESHWARDEN_CAPTURE_TEST_UID=1000"},
			want: "meshwarden-init: could not program REDIRECT capture with nftables (rolled back): nftables: netlink receive: operation not permitted (meshwarden-init needs CAP_NET_ADMIN)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := initResult(t, tp, tc.env, tc.args...)
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if diff := cmp.Diff(tc.want+"\n", stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			diffSnapshots(t, "after the failure", before, snapshot(t, tp))
		})
	}
	// A failure after the rules are in (the IPv6 TPROXY route needs lo up) must take them out again.
	t.Run("TPROXY with lo down is rolled back", func(t *testing.T) {
		run(t, "", "ip", "-n", tp.pod, "link", "set", "lo", "down")
		before := snapshot(t, tp)
		code, _, stderr := initResult(t, tp, nil, "--backend", "nftables", "--mode", "TPROXY")
		want := "meshwarden-init: could not program TPROXY capture with nftables (rolled back): policy routing: " +
			"add ip6 route: netlink receive: network is down (the TPROXY route goes through lo, which must be up)\n"
		if code != 1 {
			t.Errorf("exit code = %d, want 1", code)
		}
		if diff := cmp.Diff(want, stderr); diff != "" {
			t.Errorf("stderr (-want +got):\n%s", diff)
		}
		diffSnapshots(t, "after the rollback", before, snapshot(t, tp))
	})
}

// checkDryRunMatches compares --dry-run with what the kernel holds: the nft listing of
// meshwarden's tables, or the rules of meshwarden's iptables chains.
func checkDryRunMatches(t *testing.T, tp topo, backend string, args []string) {
	t.Helper()
	ns := tp.pod
	var want []string
	for _, l := range strings.Split(initIn(t, tp, args...), "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if backend == "nftables" || strings.HasPrefix(l, "-A ") {
			want = append(want, l)
		}
	}
	var got []string
	if backend == "nftables" {
		for _, fam := range []string{"ip", "ip6"} {
			for _, l := range strings.Split(run(t, "", "ip", "netns", "exec", ns, "nft", "list", "table", fam, nftTable), "\n") {
				if l != "" {
					got = append(got, l)
				}
			}
		}
	} else {
		for _, save := range []string{"iptables-save", "ip6tables-save"} {
			for _, l := range strings.Split(run(t, "", "ip", "netns", "exec", ns, tp.tool(save)), "\n") {
				if strings.HasPrefix(l, "-A ") && strings.Contains(l, iptChainPrefix) {
					got = append(got, l)
				}
			}
		}
	}
	if backend != "nftables" {
		// iptables-save groups rules per chain in table order; compare as sets of lines.
		slices.Sort(want)
		slices.Sort(got)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--dry-run differs from the applied ruleset (-dry-run +kernel):\n%s", diff)
	}
}
