// Package proxyconfig reads Istio's ProxyConfig (mesh.istio.io/v1alpha1), the settings pilot-agent and
// Envoy take from the PROXY_CONFIG environment variable and the proxy.istio.io/config annotation. It
// decodes them with Istio's own message type, strictly, so that a value the agent would refuse at
// start (and crash-loop on) is refused at admission instead, with the field named.
package proxyconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/didyoumean"
)

// Error is a ProxyConfig that does not decode. Field is set when one field is to blame.
type Error struct {
	// Field is the JSON name of the unknown or malformed field, when the decoder names one.
	Field string
	// Unknown is true when Field is not a ProxyConfig field at all.
	Unknown bool
	msg     string
}

func (e *Error) Error() string { return e.msg }

// Parse decodes a ProxyConfig given as YAML or JSON (the annotation is usually YAML) and returns it as
// canonical JSON fields: one raw JSON value per top-level field the input sets.
func Parse(data []byte) (map[string]json.RawMessage, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &Error{msg: "must be a ProxyConfig in YAML or JSON: " + err.Error()}
	}
	var pc meshv1alpha1.ProxyConfig
	if err := protojson.Unmarshal(j, &pc); err != nil {
		return nil, decodeError(err)
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(j, &in); err != nil || in == nil {
		return nil, &Error{msg: "must be a ProxyConfig object, such as {holdApplicationUntilProxyStarts: true}"}
	}
	// protojson accepts a field's proto name (termination_drain_duration) and its JSON name; key by
	// the JSON name so that Merge replaces a field however either side spelled it.
	desc := pc.ProtoReflect().Descriptor().Fields()
	fields := make(map[string]json.RawMessage, len(in))
	for k, v := range in {
		if string(bytes.TrimSpace(v)) == "null" {
			continue // protojson reads null as unset; so does Merge: the base value stays
		}
		if f := desc.ByJSONName(k); f != nil {
			k = f.JSONName()
		} else if f := desc.ByTextName(k); f != nil {
			k = f.JSONName()
		}
		fields[k] = v
	}
	return fields, nil
}

// Merge returns base with every top-level field of overlay replacing base's, as pilot-agent applies
// the annotation over PROXY_CONFIG: a list or message the overlay sets replaces the base's whole.
// The result is JSON with sorted keys, so equal inputs give equal bytes (it is part of a cache key).
func Merge(base, overlay map[string]json.RawMessage) (string, error) {
	out := make(map[string]json.RawMessage, len(base)+len(overlay))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range overlay {
		out[k] = v
	}
	// As istiod's own injector does (mesh.MergeProxyConfig), proxyMetadata merges key by key: a pod
	// that adds one variable keeps the mesh-wide ones.
	if b, o := base[metadataField], overlay[metadataField]; b != nil && o != nil {
		var bm, om map[string]string
		if err := json.Unmarshal(b, &bm); err != nil {
			return "", err
		}
		if err := json.Unmarshal(o, &om); err != nil {
			return "", err
		}
		for k, v := range om {
			if bm == nil {
				bm = map[string]string{}
			}
			bm[k] = v
		}
		merged, err := json.Marshal(bm)
		if err != nil {
			return "", err
		}
		out[metadataField] = merged
	}
	b, err := json.Marshal(out) // encoding/json sorts map keys
	return string(b), err
}

const metadataField = "proxyMetadata"

// Metadata is the proxyMetadata of a merged ProxyConfig (Merge's output), sorted by name. istiod's
// injector gives each entry to the proxy as an environment variable as well: pilot-agent reads many
// of its switches (ISTIO_META_DNS_CAPTURE, say) from its environment when it starts.
func Metadata(merged string) ([][2]string, error) {
	var pc struct {
		M map[string]string `json:"proxyMetadata"`
	}
	if err := json.Unmarshal([]byte(merged), &pc); err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(pc.M))
	for k, v := range pc.M {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out, nil
}

// FromMap turns the config file's proxyConfig (already decoded from YAML) into fields, validating it.
func FromMap(m map[string]any) (map[string]json.RawMessage, error) {
	if len(m) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return Parse(j)
}

// FieldNames are ProxyConfig's JSON field names, for did-you-mean suggestions.
func FieldNames() []string {
	fields := (&meshv1alpha1.ProxyConfig{}).ProtoReflect().Descriptor().Fields()
	out := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		out = append(out, fields.Get(i).JSONName())
	}
	sort.Strings(out)
	return out
}

// protojson names the field in its messages; keep that, without its "proto: (line 1:2)" noise.
var (
	unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)
	badField     = regexp.MustCompile(`invalid value for [^ ]+ (?:type|field) ?[^:]*?:? ?([A-Za-z0-9_.]+)?`)
	noise        = regexp.MustCompile(`^proto:\s*(\(line \d+:\d+\):\s*)?`)
)

func decodeError(err error) error {
	msg := noise.ReplaceAllString(err.Error(), "")
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		msg := fmt.Sprintf("unknown ProxyConfig field %q", m[1])
		if s := didyoumean.Closest(m[1], FieldNames()); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return &Error{Field: m[1], Unknown: true, msg: msg}
	}
	e := &Error{msg: "not a valid ProxyConfig: " + msg}
	if m := badField.FindStringSubmatch(msg); m != nil && m[1] != "" {
		e.Field = m[1]
	}
	return e
}
