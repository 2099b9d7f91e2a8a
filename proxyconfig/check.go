package proxyconfig

import (
	"encoding/json"
	"maps"
	"net"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Check refuses what decodes as a ProxyConfig but that meshwarden's istio profile could not honour,
// or that pilot-agent or the API server would refuse later: a moved status port (probes and metrics
// are rendered to go to 15020), a discovery address without a port, and proxyMetadata names that
// cannot be environment variables (each entry becomes one). p is where the ProxyConfig was given.
func Check(p *field.Path, pc map[string]json.RawMessage) field.ErrorList {
	var errs field.ErrorList
	if _, ok := pc["statusPort"]; ok {
		errs = append(errs, field.Forbidden(p.Child("statusPort"), "the istio profile's agent listens on 15020 (probes and metrics are sent there); it cannot be moved"))
	}
	if raw, ok := pc["discoveryAddress"]; ok {
		var addr string
		_ = json.Unmarshal(raw, &addr) // Parse has checked that it is a string
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			errs = append(errs, field.Invalid(p.Child("discoveryAddress"), addr, "must be host:port, such as istiod.istio-system.svc:15012"))
		}
	}
	if raw, ok := pc[metadataField]; ok {
		var md map[string]string
		_ = json.Unmarshal(raw, &md) // Parse has checked that it is a map of strings
		for _, k := range slices.Sorted(maps.Keys(md)) {
			for _, msg := range validation.IsEnvVarName(k) {
				errs = append(errs, field.Invalid(p.Child(metadataField).Key(k), k, msg+" (each proxyMetadata entry is an environment variable of the proxy)"))
			}
		}
	}
	return errs
}
