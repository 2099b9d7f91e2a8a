package inject

import (
	"strconv"
	"strings"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/proxyconfig"
)

// Names and ports of what meshwarden adds; shared with the default templates and meshwarden-init.
const (
	ProxyName    = "envoy"
	InitName     = "meshwarden-init"
	ProxyUID     = 1337
	OutboundPort = 15001
	InboundPort  = 15006
	AdminPort    = 15000
	PromPort     = 15090
	AgentPort    = 15020
)

// settings are everything rendering depends on besides the template set. The struct is comparable, so
// it is the render cache key: two pods with the same settings get the same rendered sidecar.
type settings struct {
	profile                                                config.Profile
	templates                                              string // comma-joined names
	proxyImage, initImage                                  string
	proxyCPU, proxyMemory, proxyCPULimit, proxyMemoryLimit string
	logLevel, interception                                 string
	statusPort                                             int32
	native, hold                                           bool
	xdsAddress                                             string
	inclOutCIDRs, exclOutCIDRs                             string
	inclInPorts, exclInPorts                               string
	inclOutPorts, exclOutPorts                             string
	// tls is the envoy profile's TLS to its xDS server (nil: plaintext).
	tls *xdsTLS
	// facts are the istio profile's facts about the pod (zero in the envoy profile).
	facts podFacts
}

// settingsFor applies the pod's overrides to the config defaults.
func settingsFor(in config.Injection, ov Overrides) settings {
	s := settings{
		profile:          in.Profile,
		templates:        strings.Join(in.Templates, ","),
		proxyImage:       in.ProxyImage,
		initImage:        in.InitImage,
		proxyCPU:         in.ProxyCPU,
		proxyMemory:      in.ProxyMemory,
		proxyCPULimit:    in.ProxyCPULimit,
		proxyMemoryLimit: in.ProxyMemLimit,
		logLevel:         in.ProxyLogLevel,
		interception:     in.Interception,
		statusPort:       in.StatusPort,
		native:           in.NativeSidecar == nil || *in.NativeSidecar,
		hold:             in.HoldApp,
		xdsAddress:       in.XDSAddress,
		inclOutCIDRs:     "*",
		inclInPorts:      "*",
	}
	if in.Profile == config.ProfileIstio {
		s.proxyImage = in.Istio.ProxyImage
	}
	if t := in.XDSTLS; t != nil {
		s.tls = &xdsTLS{secretName: t.SecretName, serverName: t.ServerName, clientCert: t.ClientCertificate}
	}
	if len(ov.Templates) > 0 {
		s.templates = strings.Join(ov.Templates, ",")
	}
	setIf(&s.proxyImage, ov.ProxyImage)
	setIf(&s.logLevel, ov.LogLevel)
	setIf(&s.interception, ov.InterceptionMode)
	if ov.ProxyCPU != nil {
		s.proxyCPU = ov.ProxyCPU.String()
	}
	if ov.ProxyMemory != nil {
		s.proxyMemory = ov.ProxyMemory.String()
	}
	if ov.ProxyCPULimit != nil {
		s.proxyCPULimit = ov.ProxyCPULimit.String()
	}
	if ov.ProxyMemoryLimit != nil {
		s.proxyMemoryLimit = ov.ProxyMemoryLimit.String()
	}
	if ov.StatusPort != 0 {
		s.statusPort = ov.StatusPort
	}
	if ov.NativeSidecar != nil {
		s.native = *ov.NativeSidecar
	}
	if ov.HoldApplication != nil {
		s.hold = *ov.HoldApplication
	}
	setPtr(&s.inclOutCIDRs, ov.IncludeOutboundIPRanges)
	setPtr(&s.exclOutCIDRs, ov.ExcludeOutboundIPRanges)
	setPtr(&s.inclInPorts, ov.IncludeInboundPorts)
	setPtr(&s.exclInPorts, ov.ExcludeInboundPorts)
	setPtr(&s.inclOutPorts, ov.IncludeOutboundPorts)
	setPtr(&s.exclOutPorts, ov.ExcludeOutboundPorts)
	return s
}

// ProxyNameFor is the proxy container's name in a profile.
func ProxyNameFor(p config.Profile) string {
	if p == config.ProfileIstio {
		return IstioProxyName
	}
	return ProxyName
}

func (s settings) proxyName() string { return ProxyNameFor(s.profile) }

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func setPtr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// Values is what a template sees as .Values. Every field was validated before it got here; templates
// still emit each one through toJson so that no value can ever become YAML structure.
type Values struct {
	ProxyName, InitName                                    string
	ProxyImage, InitImage                                  string
	ProxyUID                                               int64
	ProxyCPU, ProxyMemory, ProxyCPULimit, ProxyMemoryLimit string
	LogLevel                                               string
	InterceptionMode                                       string
	StatusPort                                             int32
	NativeSidecar, HoldApplication                         bool
	XDSAddress                                             string
	// XDSTLSSecret is the Secret with the xDS server's CA (and a client pair), mounted at XDSTLSDir;
	// empty for plaintext ADS.
	XDSTLSSecret, XDSTLSDir string
	// CaptureArgs are meshwarden-init's arguments, in the flag syntax of cmd/meshwarden-init.
	CaptureArgs []string
	// ProxyArgs are Envoy's arguments, the bootstrap among them.
	ProxyArgs []string
	// Bootstrap is the Envoy bootstrap as JSON; node id comes from the pod via the downward API.
	Bootstrap string
	// Extra is the config's free-form `injection.values`, for custom templates.
	Extra map[string]any
	// Profile is istio or envoy; Istio holds what the istio profile's template needs (zero otherwise).
	Profile string
	Istio   IstioValues
}

// IstioValues are pilot-agent's arguments and the node metadata istiod reads, for one pod. Each string
// is emitted as one env value; the JSON ones (ProxyConfig, PodPorts, KubeAppProbers,
// PrometheusAnnotations) are complete documents that the agent decodes.
type IstioValues struct {
	AgentArgs                               []string
	DiscoveryAddress, ProxyConfig           string
	ClusterID, MeshID, TrustDomain, Network string
	AppContainers, PodPorts                 string
	WorkloadName, Owner                     string
	CanonicalName, CanonicalRevision        string
	KubeAppProbers, PrometheusAnnotations   string
	// ProxyMetadata is ProxyConfig's proxyMetadata, sorted by name, each also given to the proxy as an
	// environment variable (pilot-agent reads many of its switches from its environment).
	ProxyMetadata               []NameValue
	AgentPort                   int32
	ExitOnZeroActiveConnections bool
}

// NameValue is one environment variable.
type NameValue struct{ Name, Value string }

func (s settings) values(in config.Injection) Values {
	v := Values{
		Profile:   string(s.profile),
		ProxyName: ProxyName, InitName: InitName,
		ProxyImage: s.proxyImage, InitImage: s.initImage,
		ProxyUID: ProxyUID,
		ProxyCPU: s.proxyCPU, ProxyMemory: s.proxyMemory, ProxyCPULimit: s.proxyCPULimit, ProxyMemoryLimit: s.proxyMemoryLimit,
		LogLevel: s.logLevel, InterceptionMode: s.interception, StatusPort: s.statusPort,
		NativeSidecar: s.native, HoldApplication: s.hold, XDSAddress: s.xdsAddress,
		Extra: in.Extra,
	}
	v.CaptureArgs = []string{
		"--mode=" + s.interception,
		"--proxy-uid=" + strconv.Itoa(ProxyUID),
		"--proxy-gid=" + strconv.Itoa(ProxyUID),
		"--outbound-port=" + strconv.Itoa(OutboundPort),
		"--inbound-port=" + strconv.Itoa(InboundPort),
		"--include-outbound-cidrs=" + s.inclOutCIDRs,
		"--exclude-outbound-cidrs=" + s.exclOutCIDRs,
		"--include-outbound-ports=" + s.inclOutPorts,
		"--exclude-outbound-ports=" + s.exclOutPorts,
		"--include-inbound-ports=" + s.inclInPorts,
		"--exclude-inbound-ports=" + s.exclInPorts,
		"--proxy-ports=" + proxyPorts(s.statusPort),
	}
	v.ProxyName = s.proxyName()
	if s.profile == config.ProfileIstio {
		f, is := s.facts, in.Istio
		v.Istio = IstioValues{
			AgentArgs: []string{"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc." + is.ClusterDomain,
				"--proxyLogLevel=" + s.logLevel, "--log_output_level=default:info"},
			DiscoveryAddress: f.discovery, ProxyConfig: f.proxyConfig,
			ClusterID: is.ClusterID, MeshID: is.MeshID, TrustDomain: is.TrustDomain, Network: is.Network,
			AppContainers: f.appContainers, PodPorts: f.podPorts,
			WorkloadName: f.workloadName, Owner: f.owner,
			CanonicalName: f.canonicalName, CanonicalRevision: f.canonicalRevision,
			KubeAppProbers: f.probers, PrometheusAnnotations: f.prometheus,
			ProxyMetadata: proxyMetadata(f.proxyConfig),
			AgentPort:     AgentPort,
			// In the classic layout every container gets SIGTERM at once: the proxy stays until the
			// app's connections are done, instead of cutting them after the drain period.
			ExitOnZeroActiveConnections: !s.native,
		}
		return v
	}
	v.Bootstrap = envoyBootstrap(s.xdsAddress, s.statusPort, s.tls)
	if s.tls != nil {
		v.XDSTLSSecret, v.XDSTLSDir = s.tls.secretName, XDSTLSDir
	}
	v.ProxyArgs = []string{
		"--config-yaml", v.Bootstrap,
		"--log-level", s.logLevel,
		"--disable-hot-restart",
		"--drain-time-s", "20",
	}
	return v
}

// proxyPorts are the ports inbound capture must leave alone: the proxy's own listeners.
func proxyPorts(status int32) string {
	ports := []int{AdminPort, AgentPort, PromPort}
	if status != 15021 {
		ports = append(ports, 15021)
	}
	ports = append(ports, int(status))
	out := make([]string, 0, len(ports))
	seen := map[int]bool{}
	for _, p := range ports {
		if !seen[p] {
			seen[p] = true
			out = append(out, strconv.Itoa(p))
		}
	}
	return strings.Join(out, ",")
}

// proxyMetadata lists the merged ProxyConfig's proxyMetadata; that JSON is meshwarden's own
// (proxyconfig.Merge of validated input), so it always decodes.
func proxyMetadata(merged string) []NameValue {
	md, _ := proxyconfig.Metadata(merged)
	out := make([]NameValue, len(md))
	for i, kv := range md {
		out[i] = NameValue{Name: kv[0], Value: kv[1]}
	}
	return out
}
