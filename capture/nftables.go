package capture

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables backend speaks netlink directly, so the image needs no nft or iptables binary.
// Each family gets its own table named meshwarden; everything meshwarden adds lives there, so
// cleanup is deleting the table and nothing else is ever touched.

// nftConn is the part of *nftables.Conn the backend uses.
type nftConn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	ListTables() ([]*nftables.Table, error)
	Flush() error
}

type nftablesBackend struct {
	dial func() (nftConn, error)
}

func dialNftables() (nftConn, error) { return nftables.New() }

func nftFamily(f ipFamily) nftables.TableFamily {
	if f == ipv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// probe reports whether the kernel answers nftables requests.
func (b nftablesBackend) probe() error {
	c, err := b.dial()
	if err != nil {
		return err
	}
	_, err = c.ListTables()
	return err
}

// apply replaces meshwarden's table of every family in families with the plan's chains (a family
// without a plan loses its table), in one netlink transaction: it all applies or nothing does.
func (b nftablesBackend) apply(families []ipFamily, plans []familyPlan) error {
	c, err := b.dial()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	byFamily := map[ipFamily]familyPlan{}
	for _, fp := range plans {
		byFamily[fp.family] = fp
	}
	for _, f := range families {
		t := &nftables.Table{Name: nftTable, Family: nftFamily(f)}
		// Adding before deleting makes the delete valid whether or not the table exists, and
		// adding again rebuilds it: a rerun converges on the same ruleset.
		c.AddTable(t)
		c.DelTable(t)
		fp, ok := byFamily[f]
		if !ok {
			continue
		}
		c.AddTable(t)
		chains := map[string]*nftables.Chain{}
		for _, ch := range fp.chains {
			chains[ch.table+"/"+ch.name] = c.AddChain(nftChain(t, ch))
		}
		for _, ch := range fp.chains {
			for _, r := range ch.rules {
				c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.table+"/"+ch.name], Exprs: nftExprs(f, ch.table, r)})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

func nftChain(t *nftables.Table, ch chain) *nftables.Chain {
	c := &nftables.Chain{Name: nftChainName(ch), Table: t}
	if ch.hook == "" {
		return c
	}
	accept := nftables.ChainPolicyAccept
	c.Policy = &accept
	c.Type, c.Priority = nftables.ChainTypeNAT, nftables.ChainPriorityNATDest
	if ch.table == tableMangle {
		c.Type, c.Priority = nftables.ChainTypeFilter, nftables.ChainPriorityMangle
	}
	c.Hooknum = nftables.ChainHookPrerouting
	if ch.hook == "output" {
		c.Hooknum = nftables.ChainHookOutput
	}
	return c
}

// ifname is the register form of an interface name: NUL-padded to IFNAMSIZ for an exact match.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func cmpEq(data []byte) expr.Any {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}
}

func nftExprs(f ipFamily, table string, r rule) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		cmpEq([]byte{unix.IPPROTO_TCP}),
	}
	if r.oif != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, cmpEq(ifname(r.oif)))
	}
	if r.iif != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, cmpEq(ifname(r.iif)))
	}
	if r.uid != nil {
		e = append(e, &expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, cmpEq(binaryutil.NativeEndian.PutUint32(*r.uid)))
	}
	if r.gid != nil {
		e = append(e, &expr.Meta{Key: expr.MetaKeySKGID, Register: 1}, cmpEq(binaryutil.NativeEndian.PutUint32(*r.gid)))
	}
	if r.daddr.IsValid() {
		e = append(e, daddrExprs(f, r.daddr)...)
	}
	if r.dport != 0 {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			cmpEq(binaryutil.BigEndian.PutUint16(r.dport)))
	}
	if r.transparent {
		e = append(e, &expr.Socket{Key: expr.SocketKeyTransparent, Register: 1}, cmpEq([]byte{1}))
	}
	if r.established {
		// ct state & (established|related) != 0
		bits := binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
		e = append(e,
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: bits, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	v := r.verdict
	switch v.kind {
	case vReturn:
		e = append(e, &expr.Verdict{Kind: expr.VerdictReturn})
	case vJump:
		e = append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: table + "-" + v.chain})
	case vRedirect:
		e = append(e,
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(v.port)},
			&expr.Redir{RegisterProtoMin: 1})
	case vTProxy:
		fam := byte(unix.NFPROTO_IPV4)
		if f == ipv6 {
			fam = unix.NFPROTO_IPV6
		}
		e = append(e,
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(v.port)},
			&expr.TProxy{Family: fam, TableFamily: fam, RegPort: 1})
		e = append(e, markAccept(v.mark)...)
	case vMarkAccept:
		e = append(e, markAccept(v.mark)...)
	}
	return e
}

func markAccept(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// daddrExprs matches the destination address against a prefix: load, mask, compare.
func daddrExprs(f ipFamily, p netip.Prefix) []expr.Any {
	offset, size := uint32(16), uint32(4) // IPv4 header: destination at byte 16
	if f == ipv6 {
		offset, size = 24, 16
	}
	addr := p.Masked().Addr().AsSlice()
	mask := make([]byte, size)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)},
		cmpEq(addr),
	}
}
