package capture

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// Defaults of the flags; the injector's template relies on them when an annotation is absent.
const (
	DefaultProxyUID     = 1337
	DefaultProxyGID     = 1337
	DefaultOutboundPort = 15001
	DefaultInboundPort  = 15006
	DefaultProxyPorts   = "15000,15020,15021,15090"
)

// flagValues holds the raw strings so that every value is validated in one place, with an error
// that names the flag and the accepted form.
type flagValues struct {
	mode, backend                              string
	proxyUID, proxyGID                         string
	outboundPort, inboundPort                  string
	includeOutCIDRs, excludeOutCIDRs           string
	includeOutPorts, excludeOutPorts           string
	includeInPorts, excludeInPorts, proxyPorts string
	dryRun, cleanup                            bool
}

func newFlagSet(v *flagValues) *flag.FlagSet {
	fs := flag.NewFlagSet("meshwarden-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&v.mode, "mode", string(ModeRedirect), "interception mode: REDIRECT, TPROXY or NONE")
	fs.StringVar(&v.proxyUID, "proxy-uid", strconv.Itoa(DefaultProxyUID), "uid of the proxy; its traffic is not captured")
	fs.StringVar(&v.proxyGID, "proxy-gid", strconv.Itoa(DefaultProxyGID), "gid of the proxy; its traffic is not captured")
	fs.StringVar(&v.outboundPort, "outbound-port", strconv.Itoa(DefaultOutboundPort), "port receiving captured outbound TCP")
	fs.StringVar(&v.inboundPort, "inbound-port", strconv.Itoa(DefaultInboundPort), "port receiving captured inbound TCP")
	fs.StringVar(&v.includeOutCIDRs, "include-outbound-cidrs", "*", `destinations captured outbound: "*" all, "" none, or CIDRs`)
	fs.StringVar(&v.excludeOutCIDRs, "exclude-outbound-cidrs", "", "destinations never captured outbound (CIDRs)")
	fs.StringVar(&v.includeOutPorts, "include-outbound-ports", "", `destination ports captured outbound ("" all)`)
	fs.StringVar(&v.excludeOutPorts, "exclude-outbound-ports", "", "destination ports never captured outbound")
	fs.StringVar(&v.includeInPorts, "include-inbound-ports", "*", `ports captured inbound: "*" all, "" none, or ports`)
	fs.StringVar(&v.excludeInPorts, "exclude-inbound-ports", "", "ports never captured inbound")
	fs.StringVar(&v.proxyPorts, "proxy-ports", DefaultProxyPorts, "the proxy's own ports, never captured inbound")
	fs.StringVar(&v.backend, "backend", string(BackendAuto), "auto, nftables or iptables")
	fs.BoolVar(&v.dryRun, "dry-run", false, "print the ruleset that would be applied and change nothing")
	fs.BoolVar(&v.cleanup, "cleanup", false, "remove exactly what meshwarden added")
	return fs
}

// Usage returns the flag help of meshwarden-init, written with the "--" the injector uses.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: meshwarden-init [flags]\n\n" +
		"Programs the pod's network namespace so that its TCP traffic goes through the sidecar.\n\nFlags:\n")
	newFlagSet(&flagValues{}).VisitAll(func(f *flag.Flag) {
		if f.DefValue == "false" {
			fmt.Fprintf(&b, "  --%s\n      %s\n", f.Name, f.Usage)
			return
		}
		fmt.Fprintf(&b, "  --%s VALUE\n      %s (default %q)\n", f.Name, f.Usage, f.DefValue)
	})
	return b.String()
}

// ErrHelp is returned by ParseArgs when -h or --help is given.
var ErrHelp = flag.ErrHelp

// ParseArgs parses and validates the flags of meshwarden-init. Errors name the flag and the
// accepted form, so the injector can surface them as they are.
func ParseArgs(args []string) (Config, error) {
	var v flagValues
	fs := newFlagSet(&v)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, ErrHelp
		}
		return Config{}, flagError(err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q; meshwarden-init takes only flags", fs.Arg(0))
	}
	c := Config{DryRun: v.dryRun, Cleanup: v.cleanup}
	var err error
	if c.Mode, err = parseMode(v.mode); err != nil {
		return Config{}, err
	}
	if c.Backend, err = parseBackend(v.backend); err != nil {
		return Config{}, err
	}
	if c.ProxyUID, err = parseID("proxy-uid", "uid", v.proxyUID); err != nil {
		return Config{}, err
	}
	if c.ProxyGID, err = parseID("proxy-gid", "gid", v.proxyGID); err != nil {
		return Config{}, err
	}
	if c.OutboundPort, err = parsePort("outbound-port", v.outboundPort, "15001"); err != nil {
		return Config{}, err
	}
	if c.InboundPort, err = parsePort("inbound-port", v.inboundPort, "15006"); err != nil {
		return Config{}, err
	}
	if c.AllOutboundCIDRs, c.IncludeOutboundCIDRs, err = parseCIDRs("include-outbound-cidrs", v.includeOutCIDRs, true); err != nil {
		return Config{}, err
	}
	if _, c.ExcludeOutboundCIDRs, err = parseCIDRs("exclude-outbound-cidrs", v.excludeOutCIDRs, false); err != nil {
		return Config{}, err
	}
	// "*" and "" both mean every port for outbound includes: the CIDRs already say "none".
	if _, c.IncludeOutboundPorts, err = parsePorts("include-outbound-ports", v.includeOutPorts, true); err != nil {
		return Config{}, err
	}
	if _, c.ExcludeOutboundPorts, err = parsePorts("exclude-outbound-ports", v.excludeOutPorts, false); err != nil {
		return Config{}, err
	}
	if c.AllInboundPorts, c.IncludeInboundPorts, err = parsePorts("include-inbound-ports", v.includeInPorts, true); err != nil {
		return Config{}, err
	}
	if _, c.ExcludeInboundPorts, err = parsePorts("exclude-inbound-ports", v.excludeInPorts, false); err != nil {
		return Config{}, err
	}
	if _, c.ProxyPorts, err = parsePorts("proxy-ports", v.proxyPorts, false); err != nil {
		return Config{}, err
	}
	if c.DryRun && c.Cleanup {
		return Config{}, errors.New("--dry-run and --cleanup cannot be combined; give one of them")
	}
	return c, nil
}

// flagError rewords the flag package's errors to lead with the flag, like every other error here,
// and keeps them on one printable line whatever the input.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("%s: unknown flag; see meshwarden-init --help", printable("--"+name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("%s: needs a value, as in --%s=VALUE", printable("--"+name), printable(name))
	}
	return errors.New(printable(msg))
}

// printable returns s, or s quoted when it holds characters that would break the one-line error.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func parseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToUpper(strings.TrimSpace(s))); m {
	case ModeRedirect, ModeTProxy, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("--mode: %q is not a mode; use REDIRECT, TPROXY or NONE", s)
}

func parseBackend(s string) (Backend, error) {
	switch b := Backend(strings.ToLower(strings.TrimSpace(s))); b {
	case BackendAuto, BackendNftables, BackendIptables:
		return b, nil
	}
	return "", fmt.Errorf("--backend: %q is not a backend; use auto, nftables or iptables", s)
}

func parseID(flagName, what, s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("--%s: %q is not a %s; use a number such as 1337", flagName, s, what)
	}
	return uint32(n), nil
}

func parsePort(flagName, s, example string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--%s: %q is not a port; use a number from 1 to 65535 such as %s", flagName, s, example)
	}
	return uint16(n), nil
}

// splitList splits a comma-separated flag value; spaces around items are tolerated because
// annotations are often written by hand.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

// parseCIDRs returns all=true for "*" when star is allowed; duplicates are dropped, order is kept.
func parseCIDRs(flagName, s string, star bool) (all bool, out []netip.Prefix, err error) {
	form := "a comma-separated list such as 10.0.0.0/8,fd00::/8"
	if star {
		form = `"*" for all, "" for none, or ` + form
	}
	items := splitList(s)
	if star && len(items) == 1 && items[0] == "*" {
		return true, nil, nil
	}
	seen := map[netip.Prefix]bool{}
	for _, it := range items {
		p, perr := netip.ParsePrefix(it)
		if perr != nil {
			return false, nil, fmt.Errorf("--%s: %q is not a CIDR; use %s", flagName, it, form)
		}
		p = p.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return false, out, nil
}

// parsePorts returns all=true for "*" when star is allowed; duplicates are dropped, order is kept.
func parsePorts(flagName, s string, star bool) (all bool, out []uint16, err error) {
	form := "a comma-separated list of ports from 1 to 65535 such as 80,443"
	if star {
		form = `"*" for all or ` + form
	}
	items := splitList(s)
	if star && len(items) == 1 && items[0] == "*" {
		return true, nil, nil
	}
	seen := map[uint16]bool{}
	for _, it := range items {
		n, perr := strconv.ParseUint(it, 10, 16)
		if perr != nil || n == 0 {
			return false, nil, fmt.Errorf("--%s: %q is not a port; use %s", flagName, it, form)
		}
		if !seen[uint16(n)] {
			seen[uint16(n)] = true
			out = append(out, uint16(n))
		}
	}
	return false, out, nil
}
