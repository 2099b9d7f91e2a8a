package capture

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

func TestRestoreInput(t *testing.T) {
	c := defaults()
	c.AllInboundPorts = false // outbound only keeps the expectations short
	c.ProxyPorts = nil
	want := plan(c, []ipFamily{ipv4})[0].chains
	chainRules := strings.Join([]string{
		":MESHWARDEN_OUTPUT - [0:0]",
		"-A MESHWARDEN_OUTPUT -p tcp -m owner --uid-owner 1337 -j RETURN",
		"-A MESHWARDEN_OUTPUT -p tcp -m owner --gid-owner 1337 -j RETURN",
		"-A MESHWARDEN_OUTPUT -o lo -p tcp -j RETURN",
		"-A MESHWARDEN_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
	}, "\n")
	tests := map[string]struct {
		saved string
		want  []chain
		out   string
	}{
		"fresh namespace": {
			saved: "",
			want:  want,
			out:   "*nat\n" + chainRules + "\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\nCOMMIT\n",
		},
		"rerun keeps the jump and rebuilds the chain": {
			saved: "*nat\n:OUTPUT ACCEPT [0:0]\n:MESHWARDEN_OUTPUT - [0:0]\n-A OUTPUT -p udp -j RETURN\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\nCOMMIT\n",
			want:  want,
			out:   "*nat\n" + chainRules + "\nCOMMIT\n",
		},
		"duplicate jump and stale chains are removed": {
			saved: "*nat\n:OUTPUT ACCEPT [0:0]\n:PREROUTING ACCEPT [0:0]\n:MESHWARDEN_OUTPUT - [0:0]\n:MESHWARDEN_PREROUTING - [0:0]\n" +
				"-A PREROUTING -p tcp -j MESHWARDEN_PREROUTING\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\n" +
				"-A MESHWARDEN_PREROUTING -p tcp -j REDIRECT --to-ports 15006\nCOMMIT\n",
			want: want,
			out: "*nat\n:MESHWARDEN_OUTPUT - [0:0]\n-D PREROUTING -p tcp -j MESHWARDEN_PREROUTING\n-D OUTPUT -p tcp -j MESHWARDEN_OUTPUT\n" +
				"-F MESHWARDEN_PREROUTING\n-X MESHWARDEN_PREROUTING\n" + strings.TrimPrefix(chainRules, ":MESHWARDEN_OUTPUT - [0:0]\n") + "\nCOMMIT\n",
		},
		"cleanup touches only meshwarden": {
			saved: "*nat\n:OUTPUT ACCEPT [0:0]\n:MESHWARDEN_OUTPUT - [0:0]\n:OTHER - [0:0]\n-A OUTPUT -p udp -j OTHER\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\nCOMMIT\n" +
				"*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n",
			want: nil,
			out:  "*nat\n-D OUTPUT -p tcp -j MESHWARDEN_OUTPUT\n-F MESHWARDEN_OUTPUT\n-X MESHWARDEN_OUTPUT\nCOMMIT\n",
		},
		"cleanup of a clean namespace does nothing": {
			saved: "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
			want:  nil,
			out:   "",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := restoreInput(ipv4, parseSave(tc.saved), tc.want)
			if diff := cmp.Diff(tc.out, got); diff != "" {
				t.Errorf("restoreInput (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeNft stands in for the netlink connection.
type fakeNft struct {
	listErr, flushErr error
	flushes           int
}

func (f *fakeNft) AddTable(t *nftables.Table) *nftables.Table { return t }
func (f *fakeNft) DelTable(*nftables.Table)                   {}
func (f *fakeNft) AddChain(c *nftables.Chain) *nftables.Chain { return c }
func (f *fakeNft) AddRule(r *nftables.Rule) *nftables.Rule    { return r }
func (f *fakeNft) ListTables() ([]*nftables.Table, error)     { return nil, f.listErr }
func (f *fakeNft) Flush() error                               { f.flushes++; return f.flushErr }

func testEngine(nft *fakeNft, run runner, iptablesInstalled bool) engine {
	return engine{
		nft:      nftablesBackend{dial: func() (nftConn, error) { return nft, nil }},
		ipt:      iptablesBackend{run: run},
		families: func() []ipFamily { return []ipFamily{ipv4, ipv6} },
		routes:   func(ipFamily, bool) error { return nil },
		lookPath: func(name string) (string, error) {
			if iptablesInstalled {
				return "/usr/sbin/" + name, nil
			}
			return "", errors.New("not found")
		},
	}
}

func TestChooseBackend(t *testing.T) {
	tests := map[string]struct {
		asked     Backend
		probeErr  error
		iptables  bool
		want      Backend
		wantError string
	}{
		"explicit iptables is kept":  {asked: BackendIptables, want: BackendIptables},
		"explicit nftables is kept":  {asked: BackendNftables, probeErr: syscall.EPROTONOSUPPORT, want: BackendNftables},
		"auto prefers nftables":      {asked: BackendAuto, iptables: true, want: BackendNftables},
		"auto: EPERM still nftables": {asked: BackendAuto, probeErr: syscall.EPERM, want: BackendNftables},
		"auto falls back":            {asked: BackendAuto, probeErr: syscall.EPROTONOSUPPORT, iptables: true, want: BackendIptables},
		"auto with neither": {asked: BackendAuto, probeErr: syscall.EPROTONOSUPPORT,
			wantError: "--backend auto: nftables is not available (protocol not supported) and iptables-restore is not installed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := testEngine(&fakeNft{listErr: tc.probeErr}, nil, tc.iptables)
			got, err := e.chooseBackend(tc.asked)
			if tc.wantError != "" {
				if err == nil || err.Error() != tc.wantError {
					t.Fatalf("chooseBackend error = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("chooseBackend = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestIptablesFailureRollsBack checks that a failing ip6tables-restore leaves no IPv4 rules behind:
// the pod must not start half-captured.
func TestIptablesFailureRollsBack(t *testing.T) {
	var calls []string
	saved := map[string]string{"iptables-save": ""}
	run := func(_ context.Context, stdin, name string, args ...string) (string, error) {
		calls = append(calls, name)
		switch name {
		case "ip6tables-restore":
			return "", errors.New("ip6tables-restore: exit status 2: line 3 failed")
		case "iptables-restore":
			if strings.Contains(stdin, "-A OUTPUT") {
				saved["iptables-save"] = "*nat\n:OUTPUT ACCEPT [0:0]\n:MESHWARDEN_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j MESHWARDEN_OUTPUT\nCOMMIT\n"
			} else if strings.Contains(stdin, "-X MESHWARDEN_OUTPUT") {
				saved["iptables-save"] = ""
			}
		}
		return saved[name], nil
	}
	c := defaults()
	c.Backend = BackendIptables
	err := testEngine(&fakeNft{}, run, true).run(context.Background(), c, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 3 failed") {
		t.Fatalf("run error = %v, want the ip6tables-restore failure", err)
	}
	if saved["iptables-save"] != "" {
		t.Errorf("IPv4 rules left behind after the IPv6 failure; calls: %v", calls)
	}
}

func TestNoneTouchesNothing(t *testing.T) {
	nft := &fakeNft{}
	c := defaults()
	c.Mode = ModeNone
	var out strings.Builder
	if err := testEngine(nft, nil, false).run(context.Background(), c, &out); err != nil {
		t.Fatal(err)
	}
	if nft.flushes != 0 {
		t.Errorf("mode NONE sent %d netlink transactions, want 0", nft.flushes)
	}
	if diff := cmp.Diff("# mode NONE: nothing to program\n", out.String()); diff != "" {
		t.Error(diff)
	}
}

func TestMainExitCodes(t *testing.T) {
	var out, errb strings.Builder
	if code := Main(context.Background(), []string{"--mode", "bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag exit code = %d, want 2", code)
	}
	if diff := cmp.Diff("meshwarden-init: --mode: \"bogus\" is not a mode; use REDIRECT, TPROXY or NONE\n", errb.String()); diff != "" {
		t.Error(diff)
	}
	out.Reset()
	if code := Main(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--include-outbound-cidrs") {
		t.Errorf("--help: exit %d, output %q", code, out.String())
	}
}
