package chart

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)

func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("invalid selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(set))
}

// nsLabels are a namespace's labels as the API server sees them (it adds kubernetes.io/metadata.name).
// example.com/environment satisfies the extra selectors of the "everything" case.
func nsLabels(name string, extra ...string) map[string]string {
	l := map[string]string{"kubernetes.io/metadata.name": name, "example.com/environment": "prod"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// TestInjectorSelectors evaluates the MutatingWebhookConfiguration's selectors the way the API server
// does, for namespaces and pods with each combination of opt-in/opt-out labels.
func TestInjectorSelectors(t *testing.T) {
	const nsKey, podKey = "meshwarden.io/inject", "sidecar.meshwarden.io/inject"
	type selCase struct {
		ns, pod map[string]string
		want    []string
	}
	cases := []selCase{
		{nsLabels("apps", nsKey, "enabled"), nil, []string{"inject.meshwarden.io"}},
		{nsLabels("apps", nsKey, "enabled"), map[string]string{podKey: "true"}, []string{"inject.meshwarden.io"}},
		{nsLabels("apps", nsKey, "enabled"), map[string]string{podKey: "false"}, nil},
		{nsLabels("plain"), nil, nil},
		{nsLabels("plain"), map[string]string{podKey: "true"}, []string{"pod.inject.meshwarden.io"}},
		{nsLabels("plain"), map[string]string{podKey: "false"}, nil},
		{nsLabels("out", nsKey, "disabled"), nil, nil},
		// The pod's own label overrides the namespace's, as in meshwarden's decision.
		{nsLabels("out", nsKey, "disabled"), map[string]string{podKey: "true"}, []string{"pod.inject.meshwarden.io"}},
		{nsLabels("odd", nsKey, "maybe"), map[string]string{podKey: "true"}, []string{"pod.inject.meshwarden.io"}},
	}
	// Never, whatever the labels: the system namespaces and meshwarden's own (no deadlock).
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", releaseNS} {
		for _, pod := range []map[string]string{nil, {podKey: "true"}} {
			cases = append(cases, selCase{nsLabels(ns, nsKey, "enabled"), pod, nil}, selCase{nsLabels(ns), pod, nil})
		}
	}
	// alwaysInjectSelector (the "everything" case: example.com/mesh Exists) reaches pods in namespaces
	// that are neither enabled nor disabled; elsewhere the label decides as usual.
	mesh := map[string]string{"example.com/mesh": "yes"}
	alwaysCases := func(always bool) []selCase {
		var want []string
		if always {
			want = []string{"always-0.inject.meshwarden.io"}
		}
		return []selCase{
			{nsLabels("plain"), mesh, want},
			{nsLabels("odd", nsKey, "maybe"), mesh, want},
			{nsLabels("plain"), map[string]string{"example.com/mesh": "yes", podKey: "true"}, []string{"pod.inject.meshwarden.io"}},
			{nsLabels("plain"), map[string]string{"example.com/mesh": "yes", podKey: "false"}, nil},
			{nsLabels("out", nsKey, "disabled"), mesh, nil},
			{nsLabels("apps", nsKey, "enabled"), mesh, []string{"inject.meshwarden.io"}},
			{nsLabels(releaseNS), mesh, nil},
			{nsLabels("kube-system"), mesh, nil},
		}
	}
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		mwc := find[*admissionv1.MutatingWebhookConfiguration](t, objs, releaseName)
		for _, c := range append(cases, alwaysCases(name == "everything")...) {
			var got []string
			for _, w := range mwc.Webhooks {
				if selects(t, w.NamespaceSelector, c.ns) && selects(t, w.ObjectSelector, c.pod) {
					got = append(got, w.Name)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("namespace %v, pod %v: matched by %q, want %q", c.ns, c.pod, got, c.want)
			}
		}
	})
}

// TestGuardSelectors: the guard sees every namespace but the system ones, meshwarden's own and those
// labelled meshwarden.io/config-guard=off.
func TestGuardSelectors(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		vwc := find[*admissionv1.ValidatingWebhookConfiguration](t, objs, releaseName)
		if len(vwc.Webhooks) != 1 {
			t.Fatalf("%d validating webhooks, want 1", len(vwc.Webhooks))
		}
		w := vwc.Webhooks[0]
		for ns, want := range map[string]bool{"apps": true, "kube-system": false, "kube-public": false, "kube-node-lease": false, releaseNS: false} {
			if got := selects(t, w.NamespaceSelector, nsLabels(ns)); got != want {
				t.Errorf("namespace %s: guarded = %v, want %v", ns, got, want)
			}
		}
		for mode, want := range map[string]bool{"warn": true, "deny": true, "off": false} {
			if got := selects(t, w.NamespaceSelector, nsLabels("apps", "meshwarden.io/config-guard", mode)); got != want {
				t.Errorf("config-guard=%s: guarded = %v, want %v", mode, got, want)
			}
		}
	})
}

// TestGuardOffByDefault: with guard.defaultMode off, only namespaces that ask for the guard are sent.
func TestGuardOffByDefault(t *testing.T) {
	objs := decodeAll(t, render(t, renderCase{set: []string{"guard.defaultMode=off"}}))
	w := find[*admissionv1.ValidatingWebhookConfiguration](t, objs, releaseName).Webhooks[0]
	for labels, want := range map[string]bool{"": false, "warn": true, "deny": true, "off": false} {
		ns := nsLabels("apps")
		if labels != "" {
			ns = nsLabels("apps", "meshwarden.io/config-guard", labels)
		}
		if got := selects(t, w.NamespaceSelector, ns); got != want {
			t.Errorf("config-guard=%q: guarded = %v, want %v", labels, got, want)
		}
	}
	if selects(t, w.NamespaceSelector, nsLabels(releaseNS, "meshwarden.io/config-guard", "deny")) {
		t.Error("meshwarden's own namespace is guarded")
	}
}

func ruleStrings(rules []admissionv1.RuleWithOperations) []string {
	var out []string
	for _, r := range rules {
		for _, op := range r.Operations {
			for _, g := range r.APIGroups {
				for _, v := range r.APIVersions {
					for _, res := range r.Resources {
						out = append(out, fmt.Sprintf("%s %s/%s %s", op, g, v, res))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestWebhookSettings checks rules, policies and where the API server sends the requests.
func TestWebhookSettings(t *testing.T) {
	wantGuard := []string{}
	for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
		for _, r := range []string{"gateways", "virtualservices", "destinationrules", "serviceentries"} {
			for _, op := range []string{"CREATE", "UPDATE", "DELETE"} {
				wantGuard = append(wantGuard, fmt.Sprintf("%s networking.istio.io/%s %s", op, v, r))
			}
		}
	}
	for _, r := range []string{"apps/v1 deployments", "apps/v1 statefulsets", "apps/v1 daemonsets", "apps/v1 replicasets", "batch/v1 jobs", "batch/v1 cronjobs"} {
		wantGuard = append(wantGuard, "CREATE "+r, "UPDATE "+r)
	}
	wantGuard = append(wantGuard, "DELETE /v1 services")
	slices.Sort(wantGuard)

	forEachCase(t, func(t *testing.T, name string, objs []object) {
		svc := find[*corev1.Service](t, objs, releaseName+"-webhook")
		checkClient := func(hook string, cc admissionv1.WebhookClientConfig, path string) {
			if cc.URL != nil || cc.Service == nil {
				t.Fatalf("%s: clientConfig must name the Service, got %+v", hook, cc)
			}
			s := cc.Service
			if s.Name != svc.Name || s.Namespace != releaseNS || s.Path == nil || *s.Path != path || s.Port == nil || *s.Port != 443 {
				t.Errorf("%s: clientConfig.service = %s/%s:%v%v, want %s/%s:443%s", hook, s.Namespace, s.Name, s.Port, s.Path, releaseNS, svc.Name, path)
			}
		}
		wantInjectPolicy, wantGuardPolicy := admissionv1.Fail, admissionv1.Ignore
		switch name {
		case "ha-off":
			wantInjectPolicy = admissionv1.Ignore
		case "everything":
			wantGuardPolicy = admissionv1.Fail
		}
		mwc := find[*admissionv1.MutatingWebhookConfiguration](t, objs, releaseName)
		if want := map[string]int{"everything": 3}[name]; len(mwc.Webhooks) != max(want, 2) {
			t.Fatalf("%d mutating webhooks, want %d", len(mwc.Webhooks), max(want, 2))
		}
		for _, w := range mwc.Webhooks {
			checkClient(w.Name, w.ClientConfig, "/inject")
			if diff := cmp.Diff([]string{"CREATE /v1 pods"}, ruleStrings(w.Rules)); diff != "" {
				t.Errorf("%s rules (-want +got):\n%s", w.Name, diff)
			}
			if *w.FailurePolicy != wantInjectPolicy || *w.SideEffects != admissionv1.SideEffectClassNone ||
				!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
				t.Errorf("%s: failurePolicy %s, sideEffects %s, admissionReviewVersions %v", w.Name, *w.FailurePolicy, *w.SideEffects, w.AdmissionReviewVersions)
			}
			if name != "everything" && (*w.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy || *w.TimeoutSeconds != 10) {
				t.Errorf("%s: reinvocationPolicy %s, timeoutSeconds %d; want IfNeeded, 10", w.Name, *w.ReinvocationPolicy, *w.TimeoutSeconds)
			}
		}
		vwc := find[*admissionv1.ValidatingWebhookConfiguration](t, objs, releaseName)
		w := vwc.Webhooks[0]
		checkClient(w.Name, w.ClientConfig, "/validate")
		if diff := cmp.Diff(wantGuard, ruleStrings(w.Rules)); diff != "" {
			t.Errorf("guard rules (-want +got):\n%s", diff)
		}
		if *w.FailurePolicy != wantGuardPolicy || *w.SideEffects != admissionv1.SideEffectClassNone {
			t.Errorf("guard: failurePolicy %s, sideEffects %s", *w.FailurePolicy, *w.SideEffects)
		}
	})
}

// TestCertModes: who fills caBundle. self: nobody in the chart (meshwarden patches it, so helm
// upgrade never resets it); cert-manager: its CA injector, from the Certificate the chart creates;
// files: the CA given in values.
func TestCertModes(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		cfg := loadConfig(t, objs)
		mwc := find[*admissionv1.MutatingWebhookConfiguration](t, objs, releaseName)
		vwc := find[*admissionv1.ValidatingWebhookConfiguration](t, objs, releaseName)
		var bundles [][]byte
		for _, w := range mwc.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		bundles = append(bundles, vwc.Webhooks[0].ClientConfig.CABundle)
		annotations := []string{mwc.Annotations["cert-manager.io/inject-ca-from"], vwc.Annotations["cert-manager.io/inject-ca-from"]}
		certificates := all[*cmapi.Certificate](objs)

		switch cfg.Certs.Mode {
		case "self", "files":
			for _, a := range annotations {
				if a != "" {
					t.Errorf("%s mode: unexpected cert-manager.io/inject-ca-from %q", cfg.Certs.Mode, a)
				}
			}
			if len(certificates) != 0 {
				t.Errorf("%s mode renders %d Certificates", cfg.Certs.Mode, len(certificates))
			}
			for _, b := range bundles {
				if cfg.Certs.Mode == "self" && len(b) != 0 {
					t.Errorf("self mode: the chart sets caBundle %q; a helm upgrade would reset meshwarden's", b)
				}
				if cfg.Certs.Mode == "files" && string(b) != "-----BEGIN CERTIFICATE-----\n" {
					t.Errorf("files mode: caBundle %q is not the one from values", b)
				}
			}
		case "cert-manager":
			serving := find[*cmapi.Certificate](t, objs, releaseName+"-webhook")
			for _, a := range annotations {
				if a != releaseNS+"/"+serving.Name {
					t.Errorf("inject-ca-from = %q, want %s/%s", a, releaseNS, serving.Name)
				}
			}
			if serving.Spec.SecretName != cfg.Certs.SecretName {
				t.Errorf("Certificate writes Secret %q, meshwarden reads %q", serving.Spec.SecretName, cfg.Certs.SecretName)
			}
			svc := cfg.Certs.ServiceName
			for _, dns := range []string{svc, svc + "." + releaseNS, svc + "." + releaseNS + ".svc", "meshwarden.example.internal"} {
				if !slices.Contains(serving.Spec.DNSNames, dns) {
					t.Errorf("serving Certificate lacks DNS name %s: %v", dns, serving.Spec.DNSNames)
				}
			}
			ca := find[*cmapi.Issuer](t, objs, serving.Spec.IssuerRef.Name)
			if ca.Spec.CA == nil {
				t.Fatalf("Issuer %s is not a CA issuer", ca.Name)
			}
			root := find[*cmapi.Certificate](t, objs, releaseName+"-ca")
			if !root.Spec.IsCA || root.Spec.SecretName != ca.Spec.CA.SecretName {
				t.Errorf("root Certificate isCA=%v secret %q; CA Issuer reads %q", root.Spec.IsCA, root.Spec.SecretName, ca.Spec.CA.SecretName)
			}
			if self := find[*cmapi.Issuer](t, objs, root.Spec.IssuerRef.Name); self.Spec.SelfSigned == nil {
				t.Errorf("root CA is issued by %s, which is not self-signed", self.Name)
			}
			if *cfg.Certs.PatchCABundle {
				t.Error("cert-manager mode: meshwarden would fight cert-manager's CA injector over caBundle")
			}
		}
	})
}
