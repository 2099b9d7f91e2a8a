package capture

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func defaults() Config {
	return Config{
		Mode: ModeRedirect, ProxyUID: 1337, ProxyGID: 1337, OutboundPort: 15001, InboundPort: 15006,
		AllOutboundCIDRs: true, AllInboundPorts: true, ProxyPorts: []uint16{15000, 15020, 15021, 15090},
		Backend: BackendAuto,
	}
}

func TestParseArgs(t *testing.T) {
	tests := map[string]struct {
		args []string
		want func(*Config)
	}{
		"defaults": {args: nil, want: func(*Config) {}},
		"everything set": {
			args: []string{
				"--mode", "TPROXY", "--proxy-uid", "1500", "--proxy-gid=1501",
				"--outbound-port", "16001", "--inbound-port", "16006",
				"--include-outbound-cidrs", "10.0.0.0/8, fd00::/8", "--exclude-outbound-cidrs", "10.1.2.3/16",
				"--include-outbound-ports", "80,443", "--exclude-outbound-ports", "22",
				"--include-inbound-ports", "8080,8443", "--exclude-inbound-ports", "9090",
				"--proxy-ports", "15000,15021", "--backend", "iptables", "--dry-run",
			},
			want: func(c *Config) {
				*c = Config{
					Mode: ModeTProxy, ProxyUID: 1500, ProxyGID: 1501, OutboundPort: 16001, InboundPort: 16006,
					IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
					ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
					IncludeOutboundPorts: []uint16{80, 443}, ExcludeOutboundPorts: []uint16{22},
					IncludeInboundPorts: []uint16{8080, 8443}, ExcludeInboundPorts: []uint16{9090},
					ProxyPorts: []uint16{15000, 15021}, Backend: BackendIptables, DryRun: true,
				}
			},
		},
		"empty includes mean none": {
			args: []string{"--include-outbound-cidrs", "", "--include-inbound-ports="},
			want: func(c *Config) { c.AllOutboundCIDRs, c.AllInboundPorts = false, false },
		},
		"star outbound ports means all": {
			args: []string{"--include-outbound-ports", "*"},
			want: func(*Config) {},
		},
		"mode and backend are case-insensitive": {
			args: []string{"--mode", "none", "--backend", "NFTables", "--cleanup"},
			want: func(c *Config) { c.Mode, c.Backend, c.Cleanup = ModeNone, BackendNftables, true },
		},
		"duplicates dropped": {
			args: []string{"--exclude-inbound-ports", "1,2,1", "--exclude-outbound-cidrs", "10.0.0.0/8,10.0.0.0/8"},
			want: func(c *Config) {
				c.ExcludeInboundPorts = []uint16{1, 2}
				c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			want := defaults()
			tc.want(&want)
			got, err := ParseArgs(tc.args)
			if err != nil {
				t.Fatalf("ParseArgs: %v", err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"bad cidr": {
			args: []string{"--exclude-outbound-cidrs", "10.0.0.0/33"},
			want: `--exclude-outbound-cidrs: "10.0.0.0/33" is not a CIDR; use a comma-separated list such as 10.0.0.0/8,fd00::/8`,
		},
		"star not allowed in exclude": {
			args: []string{"--exclude-outbound-cidrs", "*"},
			want: `--exclude-outbound-cidrs: "*" is not a CIDR; use a comma-separated list such as 10.0.0.0/8,fd00::/8`,
		},
		"star mixed into include": {
			args: []string{"--include-outbound-cidrs", "*,10.0.0.0/8"},
			want: `--include-outbound-cidrs: "*" is not a CIDR; use "*" for all, "" for none, or a comma-separated list such as 10.0.0.0/8,fd00::/8`,
		},
		"port too big": {
			args: []string{"--exclude-outbound-ports", "80,70000"},
			want: `--exclude-outbound-ports: "70000" is not a port; use a comma-separated list of ports from 1 to 65535 such as 80,443`,
		},
		"port zero": {
			args: []string{"--include-inbound-ports", "0"},
			want: `--include-inbound-ports: "0" is not a port; use "*" for all or a comma-separated list of ports from 1 to 65535 such as 80,443`,
		},
		"empty item": {
			args: []string{"--proxy-ports", "15000,,15021"},
			want: `--proxy-ports: "" is not a port; use a comma-separated list of ports from 1 to 65535 such as 80,443`,
		},
		"bad mode": {
			args: []string{"--mode", "ambient"},
			want: `--mode: "ambient" is not a mode; use REDIRECT, TPROXY or NONE`,
		},
		"bad backend": {
			args: []string{"--backend", "ebpf"},
			want: `--backend: "ebpf" is not a backend; use auto, nftables or iptables`,
		},
		"bad uid": {
			args: []string{"--proxy-uid", "envoy"},
			want: `--proxy-uid: "envoy" is not a uid; use a number such as 1337`,
		},
		"bad single port": {
			args: []string{"--inbound-port", "0"},
			want: `--inbound-port: "0" is not a port; use a number from 1 to 65535 such as 15006`,
		},
		"unknown flag": {
			args: []string{"--redirect-dns"},
			want: "--redirect-dns: unknown flag; see meshwarden-init --help",
		},
		"missing value": {
			args: []string{"--mode"},
			want: "--mode: needs a value, as in --mode=VALUE",
		},
		"positional": {
			args: []string{"REDIRECT"},
			want: `unexpected argument "REDIRECT"; meshwarden-init takes only flags`,
		},
		"dry-run with cleanup": {
			args: []string{"--dry-run", "--cleanup"},
			want: "--dry-run and --cleanup cannot be combined; give one of them",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseArgs(tc.args)
			if err == nil {
				t.Fatalf("ParseArgs(%q) succeeded, want error %q", tc.args, tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageNamesEveryFlag(t *testing.T) {
	u := Usage()
	for _, f := range []string{"mode", "proxy-uid", "proxy-gid", "outbound-port", "inbound-port",
		"include-outbound-cidrs", "exclude-outbound-cidrs", "include-outbound-ports", "exclude-outbound-ports",
		"include-inbound-ports", "exclude-inbound-ports", "proxy-ports", "backend", "dry-run", "cleanup"} {
		if !strings.Contains(u, "-"+f) {
			t.Errorf("Usage() does not mention -%s", f)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("--exclude-outbound-cidrs", "10.0.0.0/8,fd00::/8")
	f.Add("--include-inbound-ports", "*")
	f.Add("--mode", "TPROXY")
	f.Fuzz(func(t *testing.T, flagName, value string) {
		c, err := ParseArgs([]string{flagName, value})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		// Whatever parses must plan without panicking.
		_ = renderNft(plan(c, []ipFamily{ipv4, ipv6}))
		_ = renderIptables(plan(c, []ipFamily{ipv4, ipv6}))
	})
}
