// Package certmanager builds the cert-manager.io/v1 objects that provide the webhook's serving
// certificate when certs.mode is cert-manager, from the same config the self mode uses. The Helm
// chart's tests compare its templates against Objects, so chart and code cannot drift apart.
//
// The chain is a self-signed Issuer that only signs a long-lived CA Certificate, a CA Issuer backed by
// that CA, and the short-lived serving Certificate. Renewing the serving certificate then never changes
// what the webhook configurations must trust; the CA keeps its key across renewals (rotationPolicy
// Never) so certificates it signed before a renewal stay valid after it. cert-manager's cainjector
// copies the CA into caBundle, driven by the cert-manager.io/inject-ca-from annotation.
package certmanager

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/certs/pki"
	"github.com/meshwarden/meshwarden/config"
)

// Options are the inputs, all taken from the config file by FromConfig.
type Options struct {
	// Prefix names the Issuers and the CA Certificate (<prefix>-selfsigned, <prefix>-ca): the chart's
	// fullname. The serving Certificate is named after the Service.
	Prefix        string
	Namespace     string
	ServiceName   string
	SecretName    string // the serving certificate's Secret, mounted at certs.dir
	ExtraSANs     []string
	CAValidity    time.Duration
	CertValidity  time.Duration
	RenewFraction float64
}

// FromConfig takes Options from a defaulted config.
func FromConfig(cfg *config.Config) Options {
	c := cfg.Certs
	return Options{
		Prefix: "meshwarden", Namespace: cfg.Namespace, ServiceName: c.ServiceName, SecretName: c.SecretName, ExtraSANs: c.ExtraSANs,
		CAValidity: c.CAValidity.Duration, CertValidity: c.CertValidity.Duration, RenewFraction: c.RenewFraction,
	}
}

// Names of the objects, derived from the Service name.
func (o Options) selfSignedIssuer() string { return o.Prefix + "-selfsigned" }
func (o Options) caName() string           { return o.Prefix + "-ca" }
func (o Options) servingName() string      { return o.ServiceName }

// InjectCAFrom is the value of the cert-manager.io/inject-ca-from annotation on meshwarden's webhook
// configurations.
func InjectCAFrom(o Options) string { return o.Namespace + "/" + o.servingName() }

// Annotations are what the webhook configurations carry in cert-manager mode.
func Annotations(o Options) map[string]string {
	return map[string]string{cmapi.WantInjectAnnotation: InjectCAFrom(o)}
}

// Objects returns the Issuers and Certificates, in the order they depend on each other.
func Objects(o Options) ([]*cmapi.Issuer, []*cmapi.Certificate) {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "meshwarden"}}
	}
	typeIssuer := metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.IssuerKind}
	typeCert := metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind}
	ref := func(name string) cmmeta.IssuerReference {
		return cmmeta.IssuerReference{Name: name, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}
	}
	// cert-manager takes a whole percentage; round up so renewal is never later than in self mode.
	renewPct := int32(math.Ceil(o.RenewFraction * 100))
	ecdsa := func(rotation cmapi.PrivateKeyRotationPolicy) *cmapi.CertificatePrivateKey {
		return &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: rotation}
	}
	names := pki.ServiceNames(o.ServiceName, o.Namespace, o.ExtraSANs)
	var ips []string
	for _, ip := range names.IPs {
		ips = append(ips, net.IP(ip).String())
	}

	issuers := []*cmapi.Issuer{
		{TypeMeta: typeIssuer, ObjectMeta: meta(o.selfSignedIssuer()), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}},
		{TypeMeta: typeIssuer, ObjectMeta: meta(o.caName()), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: o.caName()}}}},
	}
	certs := []*cmapi.Certificate{
		{TypeMeta: typeCert, ObjectMeta: meta(o.caName()), Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: o.caName(), SecretName: o.caName(),
			Duration: &metav1.Duration{Duration: o.CAValidity}, RenewBeforePercentage: &renewPct,
			PrivateKey: ecdsa(cmapi.RotationPolicyNever), IssuerRef: ref(o.selfSignedIssuer()),
		}},
		{TypeMeta: typeCert, ObjectMeta: meta(o.servingName()), Spec: cmapi.CertificateSpec{
			CommonName: o.ServiceName + "." + o.Namespace + ".svc", DNSNames: names.DNS, IPAddresses: ips,
			SecretName: o.SecretName, Duration: &metav1.Duration{Duration: o.CertValidity}, RenewBeforePercentage: &renewPct,
			Usages:     []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageServerAuth},
			PrivateKey: ecdsa(cmapi.RotationPolicyAlways), IssuerRef: ref(o.caName()),
		}},
	}
	return issuers, certs
}

// YAML renders Objects as a multi-document manifest, the form the chart's tests compare against.
func YAML(o Options) ([]byte, error) {
	issuers, certs := Objects(o)
	var out []byte
	for _, obj := range []any{issuers[0], certs[0], issuers[1], certs[1]} {
		b, err := manifest(obj)
		if err != nil {
			return nil, fmt.Errorf("rendering cert-manager objects: %w", err)
		}
		out = append(append(out, "---\n"...), b...)
	}
	return out, nil
}

// manifest is obj as YAML without status and empty metadata fields, as one writes a manifest.
func manifest(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}
