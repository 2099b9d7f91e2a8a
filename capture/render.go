package capture

import (
	"fmt"
	"strings"
)

// This file renders plans as text for --dry-run: nft syntax for the nftables backend and
// iptables-restore input for the iptables backend.

// nftTable is meshwarden's table name in each family it programs.
const nftTable = "meshwarden"

func renderNft(plans []familyPlan) string {
	var b strings.Builder
	for _, fp := range plans {
		renderRoutes(&b, fp)
		fmt.Fprintf(&b, "table %s %s {\n", fp.family, nftTable)
		for j, c := range fp.chains {
			if j > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "\tchain %s {\n", nftChainName(c))
			if c.hook != "" {
				typ, prio := "nat", "dstnat"
				if c.hook == "output" {
					prio = "-100" // nft names dstnat only at prerouting
				}
				if c.table == tableMangle {
					typ, prio = "filter", "mangle"
				}
				fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", typ, c.hook, prio)
			}
			for _, r := range c.rules {
				fmt.Fprintf(&b, "\t\t%s\n", nftRuleText(fp.family, c.table, r))
			}
			b.WriteString("\t}\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// nftChainName prefixes the table so that one nftables table can hold nat and mangle chains.
func nftChainName(c chain) string { return c.table + "-" + c.name }

// nftRuleText writes a rule the way `nft list` prints it, so the dry-run can be compared with
// what the kernel holds.
func nftRuleText(f ipFamily, table string, r rule) string {
	var parts []string
	if r.dport == 0 {
		// nft drops the protocol match when "tcp dport" already implies it.
		parts = append(parts, "meta l4proto tcp")
	}
	if r.oif != "" {
		parts = append(parts, fmt.Sprintf("oifname %q", r.oif))
	}
	if r.iif != "" {
		parts = append(parts, fmt.Sprintf("iifname %q", r.iif))
	}
	if r.uid != nil {
		parts = append(parts, fmt.Sprintf("meta skuid %d", *r.uid))
	}
	if r.gid != nil {
		parts = append(parts, fmt.Sprintf("meta skgid %d", *r.gid))
	}
	if r.daddr.IsValid() {
		d := r.daddr.String()
		if r.daddr.IsSingleIP() {
			d = r.daddr.Addr().String() // nft prints host prefixes as bare addresses
		}
		parts = append(parts, fmt.Sprintf("%s daddr %s", f, d))
	}
	if r.dport != 0 {
		parts = append(parts, fmt.Sprintf("tcp dport %d", r.dport))
	}
	if r.transparent {
		parts = append(parts, "socket transparent 1")
	}
	if r.established {
		parts = append(parts, "ct state established,related")
	}
	v := r.verdict
	switch v.kind {
	case vReturn:
		parts = append(parts, "return")
	case vJump:
		parts = append(parts, "jump "+table+"-"+v.chain)
	case vRedirect:
		parts = append(parts, fmt.Sprintf("redirect to :%d", v.port))
	case vTProxy:
		parts = append(parts, fmt.Sprintf("tproxy to :%d meta mark set 0x%08x accept", v.port, v.mark))
	case vMarkAccept:
		parts = append(parts, fmt.Sprintf("meta mark set 0x%08x accept", v.mark))
	}
	return strings.Join(parts, " ")
}

// renderRoutes writes the TPROXY policy routing as the ip(8) commands it is equivalent to; it is
// programmed over netlink, not with ip.
func renderRoutes(b *strings.Builder, fp familyPlan) {
	if !fp.routes {
		return
	}
	n, dflt := "-4", "0.0.0.0/0"
	if fp.family == ipv6 {
		n, dflt = "-6", "::/0"
	}
	fmt.Fprintf(b, "# ip %s rule add pref %d fwmark 0x%x lookup %d\n", n, tproxyRulePref, TProxyMark, TProxyRouteTable)
	fmt.Fprintf(b, "# ip %s route replace local %s dev lo table %d\n", n, dflt, TProxyRouteTable)
}

// iptChainName is the iptables user chain for a plan chain.
func iptChainName(name string) string {
	return "MESHWARDEN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// iptRuleSpecs returns the rule specifications (without "-A CHAIN") for one plan rule. A mark
// followed by accept takes two iptables rules because MARK does not end the chain.
func iptRuleSpecs(f ipFamily, r rule) []string {
	// The order is iptables-save's, so that the dry-run reads like the saved state.
	var parts []string
	if r.daddr.IsValid() {
		parts = append(parts, "-d "+r.daddr.String())
	}
	if r.iif != "" {
		parts = append(parts, "-i "+r.iif)
	}
	if r.oif != "" {
		parts = append(parts, "-o "+r.oif)
	}
	parts = append(parts, "-p tcp")
	if r.dport != 0 {
		parts = append(parts, fmt.Sprintf("-m tcp --dport %d", r.dport))
	}
	if r.uid != nil {
		parts = append(parts, fmt.Sprintf("-m owner --uid-owner %d", *r.uid))
	}
	if r.gid != nil {
		parts = append(parts, fmt.Sprintf("-m owner --gid-owner %d", *r.gid))
	}
	if r.transparent {
		parts = append(parts, "-m socket --transparent")
	}
	if r.established {
		parts = append(parts, "-m conntrack --ctstate RELATED,ESTABLISHED")
	}
	match := strings.Join(parts, " ")
	v := r.verdict
	switch v.kind {
	case vJump:
		return []string{match + " -j " + iptChainName(v.chain)}
	case vRedirect:
		return []string{fmt.Sprintf("%s -j REDIRECT --to-ports %d", match, v.port)}
	case vTProxy:
		return []string{fmt.Sprintf("%s -j TPROXY --on-port %d --on-ip %s --tproxy-mark 0x%x/0xffffffff", match, v.port, anyAddr(f), v.mark)}
	case vMarkAccept:
		return []string{
			fmt.Sprintf("%s -j MARK --set-xmark 0x%x/0xffffffff", match, v.mark),
			match + " -j ACCEPT",
		}
	default:
		return []string{match + " -j RETURN"}
	}
}

func anyAddr(f ipFamily) string {
	if f == ipv6 {
		return "::"
	}
	return "0.0.0.0"
}
