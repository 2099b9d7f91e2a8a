package capture

import (
	"net/netip"
)

// Mode is how traffic is captured; it matches the injector's interceptionMode annotation.
type Mode string

// The interception modes.
const (
	// ModeRedirect NATs captured connections to the proxy ports (Envoy reads SO_ORIGINAL_DST).
	ModeRedirect Mode = "REDIRECT"
	// ModeTProxy keeps the original destination of inbound connections (transparent proxying);
	// outbound capture still uses REDIRECT.
	ModeTProxy Mode = "TPROXY"
	// ModeNone programs nothing.
	ModeNone Mode = "NONE"
)

// Backend names the way rules reach the kernel.
type Backend string

// The backends.
const (
	// BackendAuto uses nftables when the kernel speaks it, else iptables-restore.
	BackendAuto Backend = "auto"
	// BackendNftables programs nftables over netlink; no binary is needed.
	BackendNftables Backend = "nftables"
	// BackendIptables feeds iptables-restore/ip6tables-restore with --noflush.
	BackendIptables Backend = "iptables"
)

// Config is the parsed command line of meshwarden-init.
type Config struct {
	// Mode is the interception mode (--mode).
	Mode Mode
	// ProxyUID is the uid Envoy runs as; its traffic is never captured (--proxy-uid).
	ProxyUID uint32
	// ProxyGID is the gid Envoy runs as; its traffic is never captured (--proxy-gid).
	ProxyGID uint32
	// OutboundPort is where captured outbound connections go (--outbound-port).
	OutboundPort uint16
	// InboundPort is where captured inbound connections go (--inbound-port).
	InboundPort uint16
	// IncludeOutboundCIDRs limits outbound capture to these destinations (--include-outbound-cidrs).
	// It is ignored when AllOutboundCIDRs is set; empty and not all means no outbound capture.
	IncludeOutboundCIDRs []netip.Prefix
	// AllOutboundCIDRs is true for --include-outbound-cidrs "*".
	AllOutboundCIDRs bool
	// ExcludeOutboundCIDRs are never captured outbound (--exclude-outbound-cidrs).
	ExcludeOutboundCIDRs []netip.Prefix
	// IncludeOutboundPorts limits outbound capture to these destination ports; empty means all
	// (--include-outbound-ports).
	IncludeOutboundPorts []uint16
	// ExcludeOutboundPorts are destination ports never captured outbound (--exclude-outbound-ports).
	ExcludeOutboundPorts []uint16
	// IncludeInboundPorts limits inbound capture to these destination ports; it is ignored when
	// AllInboundPorts is set; empty and not all means no inbound capture (--include-inbound-ports).
	IncludeInboundPorts []uint16
	// AllInboundPorts is true for --include-inbound-ports "*".
	AllInboundPorts bool
	// ExcludeInboundPorts are destination ports never captured inbound (--exclude-inbound-ports).
	ExcludeInboundPorts []uint16
	// ProxyPorts are Envoy's own ports (admin, health, metrics); always excluded from inbound
	// capture (--proxy-ports).
	ProxyPorts []uint16
	// Backend selects nftables, iptables or auto (--backend).
	Backend Backend
	// DryRun prints the ruleset instead of applying it (--dry-run).
	DryRun bool
	// Cleanup removes what meshwarden added instead of adding it (--cleanup).
	Cleanup bool
}
