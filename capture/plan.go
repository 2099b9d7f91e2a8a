package capture

import "net/netip"

// ipFamily is an IP family; each is programmed on its own (table ip/ip6, iptables/ip6tables).
type ipFamily int

// The families.
const (
	ipv4 ipFamily = 4
	ipv6 ipFamily = 6
)

func (f ipFamily) String() string {
	if f == ipv6 {
		return "ip6"
	}
	return "ip"
}

// TProxy policy routing: packets marked by the TPROXY rules are delivered locally through this
// routing table, the way the kernel's tproxy documentation describes it.
const (
	TProxyMark       = 0x539 // 1337, the same number Envoy's uid uses, as Istio does
	TProxyRouteTable = 133
	tproxyRulePref   = 32000 // explicit, so that adding the rule twice is detected as a duplicate
)

// The two netfilter tables meshwarden uses; the nftables backend names its base chains after them.
const (
	tableNAT    = "nat"
	tableMangle = "mangle"
)

// Backend-neutral chain names; the nftables backend uses them as they are, the iptables backend
// derives MESHWARDEN_* names from them.
const (
	chainOutput        = "output"         // nat, hook output: outbound capture
	chainOutboundPorts = "outbound-ports" // nat: narrows outbound capture to --include-outbound-ports
	chainPrerouting    = "prerouting"     // nat (REDIRECT) or mangle (TPROXY), hook prerouting
	chainTProxy        = "tproxy"         // mangle: the TPROXY diversion
)

type verdictKind int

const (
	vReturn     verdictKind = iota
	vJump                   // to chain
	vRedirect               // REDIRECT to port
	vTProxy                 // TPROXY to port, set mark, accept
	vMarkAccept             // set mark, accept
)

type verdict struct {
	kind  verdictKind
	chain string
	port  uint16
	mark  uint32
}

// rule is one TCP rule: every match that is set must hold, then the verdict applies. Only TCP is
// ever captured, so every rule implies "protocol tcp".
type rule struct {
	oif, iif    string
	uid, gid    *uint32
	daddr       netip.Prefix // zero: any
	dport       uint16       // 0: any
	transparent bool         // an established socket with IP_TRANSPARENT owns the packet
	established bool         // conntrack state is established or related
	verdict     verdict
}

// chain is an nftables chain or an iptables user chain. hook is "" for chains reached by jumps.
type chain struct {
	name  string
	table string
	hook  string // "output" or "prerouting"
	rules []rule
}

// familyPlan is everything one family needs.
type familyPlan struct {
	family ipFamily
	chains []chain
	routes bool // TPROXY policy routing
}

// plan turns a Config into the rules for each family. It is pure so that both backends and the
// dry-run output share one source of truth.
func plan(c Config, families []ipFamily) []familyPlan {
	if c.Mode == ModeNone {
		return nil
	}
	var out []familyPlan
	for _, f := range families {
		fp := familyPlan{family: f}
		fp.chains = append(fp.chains, outbound(c, f)...)
		if c.Mode == ModeTProxy {
			in := inboundTProxy(c)
			fp.chains = append(fp.chains, in...)
			fp.routes = len(in) > 0
		} else {
			fp.chains = append(fp.chains, inboundRedirect(c)...)
		}
		if len(fp.chains) > 0 {
			out = append(out, fp)
		}
	}
	return out
}

func ofFamily(ps []netip.Prefix, f ipFamily) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == (f == ipv4) {
			out = append(out, p)
		}
	}
	return out
}

func outbound(c Config, f ipFamily) []chain {
	include := ofFamily(c.IncludeOutboundCIDRs, f)
	if !c.AllOutboundCIDRs && len(include) == 0 {
		return nil
	}
	uid, gid := c.ProxyUID, c.ProxyGID
	out := chain{name: chainOutput, table: tableNAT, hook: "output", rules: []rule{
		// The proxy's own connections must leave as they are, or they would loop into it.
		{uid: &uid, verdict: verdict{kind: vReturn}},
		{gid: &gid, verdict: verdict{kind: vReturn}},
		// Loopback covers 127.0.0.0/8, ::1 and the pod talking to its own addresses.
		{oif: "lo", verdict: verdict{kind: vReturn}},
	}}
	for _, p := range ofFamily(c.ExcludeOutboundCIDRs, f) {
		out.rules = append(out.rules, rule{daddr: p, verdict: verdict{kind: vReturn}})
	}
	for _, p := range c.ExcludeOutboundPorts {
		out.rules = append(out.rules, rule{dport: p, verdict: verdict{kind: vReturn}})
	}
	redirect := verdict{kind: vRedirect, port: c.OutboundPort}
	then := redirect
	var chains []chain
	if len(c.IncludeOutboundPorts) > 0 {
		// Both narrowings must hold; a second chain keeps it to one rule per CIDR plus one per port.
		then = verdict{kind: vJump, chain: chainOutboundPorts}
		ports := chain{name: chainOutboundPorts, table: tableNAT}
		for _, p := range c.IncludeOutboundPorts {
			ports.rules = append(ports.rules, rule{dport: p, verdict: redirect})
		}
		chains = append(chains, ports)
	}
	if c.AllOutboundCIDRs {
		out.rules = append(out.rules, rule{verdict: then})
	} else {
		for _, p := range include {
			out.rules = append(out.rules, rule{daddr: p, verdict: then})
		}
	}
	return append([]chain{out}, chains...)
}

// inboundExclusions returns the return rules for the proxy's ports and the excluded ports.
func inboundExclusions(c Config) []rule {
	var rs []rule
	seen := map[uint16]bool{}
	for _, p := range append(append([]uint16{}, c.ProxyPorts...), c.ExcludeInboundPorts...) {
		if !seen[p] {
			seen[p] = true
			rs = append(rs, rule{dport: p, verdict: verdict{kind: vReturn}})
		}
	}
	return rs
}

// inboundTargets applies then to every included inbound port (or to all).
func inboundTargets(c Config, then verdict) []rule {
	if c.AllInboundPorts {
		return []rule{{verdict: then}}
	}
	var rs []rule
	for _, p := range c.IncludeInboundPorts {
		rs = append(rs, rule{dport: p, verdict: then})
	}
	return rs
}

func inboundRedirect(c Config) []chain {
	if !c.AllInboundPorts && len(c.IncludeInboundPorts) == 0 {
		return nil
	}
	rules := append(inboundExclusions(c), inboundTargets(c, verdict{kind: vRedirect, port: c.InboundPort})...)
	return []chain{{name: chainPrerouting, table: tableNAT, hook: "prerouting", rules: rules}}
}

func inboundTProxy(c Config) []chain {
	if !c.AllInboundPorts && len(c.IncludeInboundPorts) == 0 {
		return nil
	}
	// Mangle prerouting sees every packet, including those the pod sends itself over loopback,
	// so loopback is skipped here (nat only ever sees a connection's first packet).
	rules := []rule{
		{iif: "lo", verdict: verdict{kind: vReturn}},
		// Packets of connections the proxy already accepted go straight to its socket.
		{transparent: true, verdict: verdict{kind: vMarkAccept, mark: TProxyMark}},
		// Replies to the pod's own outbound connections must not reach TPROXY: the iptables
		// target drops what no transparent socket claims.
		{established: true, verdict: verdict{kind: vReturn}},
	}
	rules = append(rules, inboundExclusions(c)...)
	rules = append(rules, inboundTargets(c, verdict{kind: vJump, chain: chainTProxy})...)
	divert := chain{name: chainTProxy, table: tableMangle, rules: []rule{
		{verdict: verdict{kind: vTProxy, port: c.InboundPort, mark: TProxyMark}},
	}}
	return []chain{{name: chainPrerouting, table: tableMangle, hook: "prerouting", rules: rules}, divert}
}
