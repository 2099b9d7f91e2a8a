// Package guard is meshwarden's reference engine for Istio networking config: a Snapshot of Services,
// ServiceEntries, Gateways, VirtualServices, DestinationRules and workloads goes in, Findings come out.
// It does no I/O, so the admission handler, the reconciler and `meshwarden check` all give the same
// answer for the same objects.
//
// Names are resolved the way istiod resolves them at runtime (short hosts expand to the referring
// object's namespace, exportTo is honoured, Gateway selectors match pods in every namespace), not the
// way istioctl analyze does where the two disagree.
package guard
