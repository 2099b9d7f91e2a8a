package inject

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Under capture, a kubelet probe to an app port would be redirected into the proxy, and under STRICT
// mTLS refused. So the istio profile sends each httpGet, tcpSocket and grpc probe to the agent's
// status port at /app-health/<container>/<readyz|livez|startupz>; the agent looks the original up
// in ISTIO_KUBE_APP_PROBERS and probes the app itself, from inside the pod. Exec probes need nothing.
// Lifecycle hooks (preStop, postStart) with httpGet or tcpSocket are sent the same way, to
// /app-lifecycle/<container>/<prestopz|poststartz>, since the kubelet calls them over the pod's IP too.

// probeEdit replaces one probe of one container.
type probeEdit struct {
	init      bool
	container string
	field     string
	value     json.RawMessage
}

// probeKinds are the fields rewritten, each a JSON pointer below the container, and the agent's URL
// for them (prefix, container name, suffix).
var probeKinds = []struct{ field, prefix, suffix string }{
	{"readinessProbe", "/app-health/", "/readyz"},
	{"livenessProbe", "/app-health/", "/livez"},
	{"startupProbe", "/app-health/", "/startupz"},
	{"lifecycle/preStop", "/app-lifecycle/", "/prestopz"},
	{"lifecycle/postStart", "/app-lifecycle/", "/poststartz"},
}

// prober is one entry of the agent's table, in the form pilot-agent decodes.
type prober struct {
	HTTPGet        json.RawMessage `json:"httpGet,omitempty"`
	TCPSocket      json.RawMessage `json:"tcpSocket,omitempty"`
	GRPC           json.RawMessage `json:"grpc,omitempty"`
	TimeoutSeconds int32           `json:"timeoutSeconds,omitempty"`
}

// containerFacts derives the app containers, their ports and the probe rewrites, from a cache on a
// pod's first pass. A pod with any status record (a later pass, rare, or a forged record) depends on
// that record too, which the key does not cover, so it is computed each time.
func (ip *istioProfile) containerFacts(pod *PodView, st *Status, rewrite bool) containerFacts {
	if st != nil {
		return deriveContainerFacts(pod, *st, rewrite)
	}
	key, ok := containersKey(pod, rewrite)
	if ok {
		if cf, hit := ip.containers.get(key); hit {
			return cf
		}
	}
	cf := deriveContainerFacts(pod, Status{}, rewrite)
	if ok {
		ip.containers.put(key, cf)
	}
	return cf
}

func deriveContainerFacts(pod *PodView, ours Status, rewrite bool) containerFacts {
	var cf containerFacts
	var apps []string
	var ports []containerPort
	// The status record is the user's to write: sets keep the lookups linear in its size.
	oursInit, oursContainers := setOf(ours.InitContainers), setOf(ours.Containers)
	for _, c := range pod.Spec.Containers {
		if oursContainers[c.Name] {
			continue
		}
		apps = append(apps, c.Name)
		ports = append(ports, c.Ports...)
	}
	cf.appContainers = strings.Join(apps, ",")
	if len(ports) > 0 {
		cf.podPorts = string(mustJSON(ports))
	}
	var e podEdits
	cf.probers = rewriteProbes(pod, ours.Probes, oursInit, oursContainers, rewrite, &e)
	cf.edits, cf.orig = e.probes, e.origProbes
	return cf
}

// containersKey is everything deriveContainerFacts reads of a pod on its first pass. ok is false for pods whose
// key would be large: such pods are rare and would crowd the cache.
func containersKey(pod *PodView, rewrite bool) (string, bool) {
	// Every variable-length field is written with its length first: names reach admission before the
	// API server validates them, so no separator byte can be trusted not to occur in them.
	b := make([]byte, 0, 512)
	num := func(n int) { b = append(strconv.AppendInt(b, int64(n), 10), ';') }
	field := func(s string) { num(len(s)); b = append(b, s...) }
	b = append(strconv.AppendBool(b, rewrite), ';')
	num(len(pod.Spec.InitContainers))
	num(len(pod.Spec.Containers))
	for _, list := range [][]containerItem{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			field(c.Name)
			num(len(c.Ports))
			for _, p := range c.Ports {
				field(p.Name)
				field(p.Protocol)
				num(int(p.ContainerPort))
			}
			for _, p := range [][]byte{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe, c.Lifecycle.PreStop, c.Lifecycle.PostStart} {
				num(len(p))
				b = append(b, p...)
			}
			if len(b) > 8<<10 {
				return "", false
			}
		}
	}
	return string(b), true
}

// rewriteProbes plans the probe edits of every user container and returns the agent's prober table
// as JSON ("" when there is nothing to probe). Originals come from the status record when the pod
// still carries a probe this injector rewrote, so a second pass rewrites the user's probe again
// instead of pointing the agent at itself.
func rewriteProbes(pod *PodView, origs map[string]json.RawMessage, oursInit, oursContainers map[string]bool, rewrite bool, e *podEdits) string {
	table := map[string]prober{}
	visit := func(c containerItem, init bool) {
		for _, k := range probeKinds {
			cur := probeOf(c, k.field)
			url := k.prefix + c.Name + k.suffix
			key := c.Name + "/" + k.field
			orig := cur
			if o, ok := origs[key]; ok && isAgentProbe(cur, url) {
				orig = o
			}
			want := orig
			if rewrite {
				if p, probe, ok := toAgent(orig, c, url); ok {
					table[url] = p
					want = probe
					if e.origProbes == nil {
						e.origProbes = map[string]json.RawMessage{}
					}
					e.origProbes[key] = orig
				}
			}
			if !jsonEqual(want, cur) {
				e.probes = append(e.probes, probeEdit{init: init, container: c.Name, field: k.field, value: want})
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if !oursInit[c.Name] && c.Name != IstioProxyName {
			visit(c, true)
		}
	}
	for _, c := range pod.Spec.Containers {
		if !oursContainers[c.Name] && c.Name != IstioProxyName {
			visit(c, false)
		}
	}
	if len(table) == 0 {
		return ""
	}
	b, _ := json.Marshal(table) // sorted keys: the same pod gives the same bytes
	return string(b)
}

func probeOf(c containerItem, fieldName string) json.RawMessage {
	var p json.RawMessage
	switch fieldName {
	case "readinessProbe":
		p = c.ReadinessProbe
	case "livenessProbe":
		p = c.LivenessProbe
	case "startupProbe":
		p = c.StartupProbe
	case "lifecycle/preStop":
		p = c.Lifecycle.PreStop
	case "lifecycle/postStart":
		p = c.Lifecycle.PostStart
	}
	if bytes.Equal(bytes.TrimSpace(p), []byte("null")) {
		return nil
	}
	return p
}

// toAgent returns the prober entry for a probe and the probe that replaces it. ok is false for probes
// that stay as they are: exec probes, and probes whose port cannot be resolved (the kubelet would
// fail them anyway, and the agent accepts numeric ports only).
func toAgent(probe json.RawMessage, c containerItem, url string) (prober, json.RawMessage, bool) {
	if probe == nil {
		return prober{}, nil, false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(probe, &p) != nil {
		return prober{}, nil, false
	}
	entry := prober{TimeoutSeconds: 1} // the Kubernetes default, for pods not yet defaulted
	if strings.HasPrefix(url, "/app-lifecycle/") {
		// A hook has no timeout of its own (the grace period bounds preStop), and a preStop endpoint
		// that drains the app may rightly take long: the agent must not cut it after a second.
		entry.TimeoutSeconds = 0
	} else if t, ok := p["timeoutSeconds"]; ok {
		var n int32
		if json.Unmarshal(t, &n) == nil && n > 0 {
			entry.TimeoutSeconds = n
		}
	}
	agentGet := map[string]json.RawMessage{}
	switch {
	case present(p["httpGet"]):
		var h map[string]json.RawMessage
		if json.Unmarshal(p["httpGet"], &h) != nil || !resolvePort(h, c) {
			return prober{}, nil, false
		}
		entry.HTTPGet = mustJSON(h)
		// The kubelet keeps its headers and host; the agent answers plain HTTP and speaks HTTPS to the
		// app itself when the original asked for it.
		agentGet = h
		delete(p, "httpGet")
	case present(p["tcpSocket"]):
		var h map[string]json.RawMessage
		if json.Unmarshal(p["tcpSocket"], &h) != nil || !resolvePort(h, c) {
			return prober{}, nil, false
		}
		entry.TCPSocket = mustJSON(h)
		delete(p, "tcpSocket")
	case present(p["grpc"]):
		var g map[string]json.RawMessage
		if json.Unmarshal(p["grpc"], &g) != nil || !resolvePort(g, c) {
			return prober{}, nil, false
		}
		entry.GRPC = p["grpc"]
		delete(p, "grpc")
	default:
		return prober{}, nil, false
	}
	agentGet["path"] = mustJSON(url)
	agentGet["port"] = mustJSON(AgentPort)
	agentGet["scheme"] = mustJSON("HTTP")
	p["httpGet"] = mustJSON(agentGet)
	return entry, mustJSON(p), true
}

// resolvePort turns a named port into its number, as the agent needs, and refuses a probe that would
// point the agent at itself.
func resolvePort(h map[string]json.RawMessage, c containerItem) bool {
	var n int32
	if json.Unmarshal(h["port"], &n) != nil {
		var name string
		if json.Unmarshal(h["port"], &name) != nil {
			return false
		}
		if v, err := strconv.Atoi(name); err == nil {
			n = int32(v)
		} else {
			for _, p := range c.Ports {
				if p.Name == name {
					n = p.ContainerPort
				}
			}
		}
	}
	if n < 1 || n > 65535 || n == AgentPort {
		return false
	}
	h["port"] = mustJSON(n)
	return true
}

// isAgentProbe is true for a probe that asks the agent for url: one this injector wrote.
func isAgentProbe(p json.RawMessage, url string) bool {
	var probe struct {
		HTTPGet *struct {
			Path string          `json:"path"`
			Port json.RawMessage `json:"port"`
		} `json:"httpGet"`
	}
	if p == nil || json.Unmarshal(p, &probe) != nil || probe.HTTPGet == nil {
		return false
	}
	return probe.HTTPGet.Path == url && string(probe.HTTPGet.Port) == strconv.Itoa(AgentPort)
}

func present(v json.RawMessage) bool {
	return len(v) > 0 && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// jsonEqual compares two JSON values by meaning, not bytes: a pod's probe and a rewritten one differ
// in key order and spacing.
func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(mustJSON(x), mustJSON(y))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values built here are marshalled, each always encodable
	}
	return b
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
