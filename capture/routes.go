package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TPROXY needs policy routing: packets the TPROXY rules mark must be delivered locally even when
// their destination is not a local address. Both backends program it here over rtnetlink, so the
// image needs no ip binary.

// routeProto tags the rule and the route as meshwarden's, so cleanup deletes only those.
const routeProto = 0x4d // 'M'

// tproxyRoutes adds (add=true) or removes the policy rule and the local default route of one
// family. Adding twice and removing what is absent both succeed.
func tproxyRoutes(f ipFamily, add bool) error {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	defer c.Close()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	family := byte(unix.AF_INET)
	if f == ipv6 {
		family = unix.AF_INET6
	}
	ruleMsg, err := fibRuleMsg(family)
	if err != nil {
		return err
	}
	routeMsg, err := localRouteMsg(family, uint32(lo.Index))
	if err != nil {
		return err
	}
	steps := []struct {
		typ   netlink.HeaderType
		flags netlink.HeaderFlags
		data  []byte
		what  string
	}{
		{unix.RTM_NEWROUTE, netlink.Create | netlink.Replace, routeMsg, "route"},
		{unix.RTM_NEWRULE, netlink.Create | netlink.Excl, ruleMsg, "rule"},
	}
	if !add {
		steps[0], steps[1] = steps[1], steps[0]
		steps[0].typ, steps[0].flags = unix.RTM_DELRULE, 0
		steps[1].typ, steps[1].flags = unix.RTM_DELROUTE, 0
	}
	for _, s := range steps {
		_, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: s.typ, Flags: netlink.Request | netlink.Acknowledge | s.flags},
			Data:   s.data,
		})
		if err == nil || (add && errors.Is(err, unix.EEXIST)) ||
			(!add && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH))) {
			continue
		}
		verb := "add"
		if !add {
			verb = "delete"
		}
		return fmt.Errorf("policy routing: %s %s %s: %w", verb, f, s.what, err)
	}
	return nil
}

// fibRuleMsg is "pref 32000 fwmark TProxyMark lookup TProxyRouteTable proto meshwarden".
func fibRuleMsg(family byte) ([]byte, error) {
	// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
	hdr := []byte{family, 0, 0, 0, TProxyRouteTable, 0, 0, unix.FR_ACT_TO_TBL, 0, 0, 0, 0}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.FRA_PRIORITY, Data: u32(tproxyRulePref)},
		{Type: unix.FRA_FWMARK, Data: u32(TProxyMark)},
		{Type: unix.FRA_TABLE, Data: u32(TProxyRouteTable)},
		{Type: unix.FRA_PROTOCOL, Data: []byte{routeProto}},
	})
	return append(hdr, attrs...), err
}

// localRouteMsg is "local default dev lo table TProxyRouteTable proto meshwarden".
func localRouteMsg(family byte, loIndex uint32) ([]byte, error) {
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	hdr := []byte{family, 0, 0, 0, TProxyRouteTable, routeProto, unix.RT_SCOPE_HOST, unix.RTN_LOCAL, 0, 0, 0, 0}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.RTA_TABLE, Data: u32(TProxyRouteTable)},
		{Type: unix.RTA_OIF, Data: u32(loIndex)},
	})
	return append(hdr, attrs...), err
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
