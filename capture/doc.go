// Package capture builds and applies a pod's traffic-capture ruleset: the netfilter rules (and, in
// TPROXY mode, the policy routes) that send the application's TCP traffic through the Envoy sidecar
// while keeping Envoy's own traffic out of the loop. The flags of meshwarden-init are parsed here
// (ParseArgs) so that the injector can check the arguments its template renders against the very
// same parser.
//
// What is captured, per IP family:
//   - Outbound: TCP the pod sends is redirected to --outbound-port unless it comes from the proxy's
//     uid or gid, leaves through loopback, goes to an excluded CIDR or port, or falls outside the
//     includes. The includes narrow: a connection is captured only when its destination is in
//     --include-outbound-cidrs ("*" all, "" none) and, when --include-outbound-ports is set, its
//     port is one of those.
//   - Inbound: TCP arriving for the pod goes to --inbound-port unless its port is one of
//     --proxy-ports or --exclude-inbound-ports, or is outside --include-inbound-ports ("*" all,
//     "" none). REDIRECT mode NATs it; TPROXY mode keeps the original destination and adds the
//     policy route (fwmark 0x539 → table 133 → local) that transparent proxying needs.
//
// Where the rules live: the nftables backend (netlink, no binaries) owns the tables "ip meshwarden"
// and "ip6 meshwarden" and replaces them in one transaction; the iptables backend owns the
// MESHWARDEN_* chains of the nat and mangle tables plus one jump from each built-in chain it
// hooks, applied with iptables-restore --noflush. Running again converges to the same ruleset and
// --cleanup removes exactly those objects. With iptables-nft, a built-in chain that did not exist
// before stays behind empty; that is iptables-nft's bookkeeping, not a rule.
package capture
