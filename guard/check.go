package guard

import (
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// Kinds of the objects findings are about.
const (
	KindVirtualService  = "VirtualService"
	KindDestinationRule = "DestinationRule"
	KindGateway         = "Gateway"
)

// Check runs every check on every VirtualService, DestinationRule and Gateway of the snapshot and
// returns the findings sorted.
func Check(s *Snapshot, o Options) []Finding {
	o = o.withDefaults()
	x := s.index(o)
	var out []Finding
	for _, vs := range s.VirtualServices {
		out = append(out, checkVirtualService(x, o, vs)...)
	}
	for _, dr := range s.DestinationRules {
		out = append(out, checkDestinationRule(x, o, dr)...)
	}
	for _, gw := range s.Gateways {
		out = append(out, checkGateway(x, gw)...)
	}
	Sort(out)
	return out
}

// CheckObject runs the checks of one object against the snapshot; the object itself need not be in the
// snapshot (admission checks the object being written against what is already there). Objects of other
// types have no findings.
func CheckObject(s *Snapshot, o Options, obj any) []Finding {
	o = o.withDefaults()
	x := s.index(o)
	var out []Finding
	switch t := obj.(type) {
	case *networking.VirtualService:
		out = checkVirtualService(x, o, t)
	case *networking.DestinationRule:
		out = checkDestinationRule(x, o, t)
	case *networking.Gateway:
		out = checkGateway(x, t)
	}
	Sort(out)
	return out
}

// Filter keeps the findings whose code is in codes.
func Filter(fs []Finding, codes ...Code) []Finding {
	keep := map[Code]bool{}
	for _, c := range codes {
		keep[c] = true
	}
	var out []Finding
	for _, f := range fs {
		if keep[f.Code] {
			out = append(out, f)
		}
	}
	return out
}
