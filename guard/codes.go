package guard

import "github.com/meshwarden/meshwarden/config"

// Code is a stable finding identifier. Codes are never renumbered; a retired check keeps its code unused.
type Code string

// Finding codes. The hundreds digit is the check number in docs/guard.md.
const (
	// CodeGatewayNotFound: a VirtualService names a Gateway that does not exist.
	CodeGatewayNotFound Code = "MW0101"
	// CodeInternalGatewayRef: a VirtualService names a Gateway that istiod generates internally.
	CodeInternalGatewayRef Code = "MW0102"
	// CodeDestinationRuleHostNotFound: a DestinationRule host matches no Service or ServiceEntry visible to it.
	CodeDestinationRuleHostNotFound Code = "MW0201"
	// CodeRouteHostNotFound: a route or mirror destination host matches no Service or ServiceEntry.
	CodeRouteHostNotFound Code = "MW0301"
	// CodeRoutePortNotFound: a route destination port is not a port of the destination Service.
	CodeRoutePortNotFound Code = "MW0302"
	// CodeRoutePortRequired: a route destination omits the port although the Service exposes several.
	CodeRoutePortRequired Code = "MW0303"
	// CodeSubsetNotFound: a route destination subset is defined by no DestinationRule for that host.
	CodeSubsetNotFound Code = "MW0401"
	// CodeSubsetSelectsNoPods: a DestinationRule subset's labels select no pod behind the host's Service.
	CodeSubsetSelectsNoPods Code = "MW0501"
	// CodeGatewaySelectsNoPods: a Gateway's selector matches no pod in any namespace.
	CodeGatewaySelectsNoPods Code = "MW0601"
	// CodeGatewayPortNotExposed: a Gateway server port is not exposed by any Service of the gateway pods.
	CodeGatewayPortNotExposed Code = "MW0602"
	// CodeHostNotInGateway: a VirtualService host bound to a Gateway is not among that Gateway's server hosts.
	CodeHostNotInGateway Code = "MW0701"
)

// Descriptions holds one sentence per code, for `meshwarden check --explain`, docs and Event notes.
var Descriptions = map[Code]string{
	CodeGatewayNotFound:             "A VirtualService names a Gateway that does not exist, so the routes bound to it never take effect.",
	CodeInternalGatewayRef:          "A VirtualService names an implementation-generated Gateway, which istiod may rename at any time.",
	CodeDestinationRuleHostNotFound: "A DestinationRule host matches no Service or ServiceEntry visible to it, so its policy applies to nothing.",
	CodeRouteHostNotFound:           "A route destination host matches no Service or ServiceEntry, so traffic sent there fails.",
	CodeRoutePortNotFound:           "A route destination port is not exposed by the destination Service.",
	CodeRoutePortRequired:           "A route destination omits the port although the Service exposes several.",
	CodeSubsetNotFound:              "A route destination subset is defined by no DestinationRule for that host, so requests get 503 NR.",
	CodeSubsetSelectsNoPods:         "A DestinationRule subset selects no pod behind its Service, so traffic to it gets 503 UH.",
	CodeGatewaySelectsNoPods:        "A Gateway's selector matches no pod, so no proxy serves it.",
	CodeGatewayPortNotExposed:       "A Gateway listens on a port that no Service of its pods exposes, so it cannot be reached through them.",
	CodeHostNotInGateway:            "A VirtualService host bound to a Gateway is not among the Gateway's hosts, so the Gateway ignores it.",
}

// Severity is a finding's level; the values are config's, so the config file and the output agree.
type Severity = config.Severity

// Severities, re-exported for callers that do not import config.
const (
	SeverityError   = config.SeverityError
	SeverityWarning = config.SeverityWarning
	SeverityInfo    = config.SeverityInfo
)
