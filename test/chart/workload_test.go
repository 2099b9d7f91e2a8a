package chart

import (
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func deployment(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	return find[*appsv1.Deployment](t, objs, releaseName)
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("pod has no volume %q", name)
	return corev1.Volume{}
}

func mountPath(t *testing.T, pod corev1.PodSpec, name string) string {
	t.Helper()
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == name {
			return m.MountPath
		}
	}
	t.Fatalf("container has no mount of volume %q", name)
	return ""
}

// checkRestricted fails unless a container runs as the "restricted" Pod Security Standard wants.
func checkRestricted(t *testing.T, what string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc, psc := c.SecurityContext, pod.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	seccomp := (sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
		(psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", what)
	case !nonRoot, !seccomp:
		t.Errorf("%s: runAsNonRoot %v, seccomp RuntimeDefault %v", what, nonRoot, seccomp)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation is not false", what)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem is writable", what)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", what, sc.Capabilities)
	}
}

// TestDeployment checks meshwarden's pods: replicas, security, probes, ports, environment, spread.
func TestDeployment(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		d := deployment(t, objs)
		want := map[string]int32{"ha-off": 1, "everything": 3}[name]
		if want == 0 {
			want = 2
		}
		if *d.Spec.Replicas != want {
			t.Errorf("replicas = %d, want %d", *d.Spec.Replicas, want)
		}
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(pod.Containers))
		}
		c := pod.Containers[0]
		checkRestricted(t, "meshwarden", pod, c)
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports["webhook"] != 9443 || ports["metrics"] != 8080 || ports["health"] != 8081 {
			t.Errorf("ports %v, want webhook 9443, metrics 8080, health 8081", ports)
		}
		for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port != intstr.FromString("health") {
				t.Errorf("probe for %s: %+v, want GET %s on the health port", path, probe, path)
			}
		}
		var podNS bool
		for _, e := range c.Env {
			podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
		}
		if !podNS {
			t.Error("no POD_NAMESPACE from the downward API")
		}
		if c.Args[0] != "serve" || !slices.Contains(c.Args, "--config="+mountPath(t, pod, "config")+"/config.yaml") {
			t.Errorf("args %q do not run serve with the mounted config file", c.Args)
		}
		if d.Spec.Template.Annotations["checksum/config"] == "" {
			t.Error("no checksum/config annotation: a config change would not roll the pods")
		}
		if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable.IntValue() != 0 {
			t.Errorf("rolling update %+v may take a serving replica away first", s)
		}
		if pod.ServiceAccountName != releaseName {
			t.Errorf("serviceAccountName = %q", pod.ServiceAccountName)
		}
		if name == "everything" && pod.PriorityClassName != "system-cluster-critical" {
			t.Errorf("priorityClassName = %q", pod.PriorityClassName)
		}
		switch name {
		case "ha-off":
			if len(pod.TopologySpreadConstraints) != 0 {
				t.Errorf("spread disabled, yet %v", pod.TopologySpreadConstraints)
			}
		default:
			if len(pod.TopologySpreadConstraints) != 1 {
				t.Fatalf("topologySpreadConstraints %v, want one", pod.TopologySpreadConstraints)
			}
			tsc := pod.TopologySpreadConstraints[0]
			wantKey := map[string]string{"everything": "topology.kubernetes.io/zone"}[name]
			if wantKey == "" {
				wantKey = "kubernetes.io/hostname"
			}
			if tsc.TopologyKey != wantKey || !selects(t, tsc.LabelSelector, d.Spec.Template.Labels) {
				t.Errorf("spread over %q selecting %v; want %q selecting meshwarden's pods", tsc.TopologyKey, tsc.LabelSelector, wantKey)
			}
		}
	})
}

// TestServiceAndDisruption: the Service reaches the pods' webhook port; the PDB allows one replica down.
func TestServiceAndDisruption(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		d := deployment(t, objs)
		svc := find[*corev1.Service](t, objs, releaseName+"-webhook")
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
			t.Errorf("Service selector %v misses the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
		}
		var https bool
		for _, p := range svc.Spec.Ports {
			https = https || (p.Port == 443 && p.TargetPort == intstr.FromString("webhook"))
		}
		if !https {
			t.Errorf("Service ports %+v: no 443 -> webhook", svc.Spec.Ports)
		}
		pdbs := all[*policyv1.PodDisruptionBudget](objs)
		if name == "ha-off" {
			if len(pdbs) != 0 {
				t.Error("PodDisruptionBudget rendered although disabled")
			}
			return
		}
		pdb := find[*policyv1.PodDisruptionBudget](t, objs, releaseName)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || !selects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("PDB maxUnavailable %v selector %v", pdb.Spec.MaxUnavailable, pdb.Spec.Selector)
		}
	})
}

// TestOptionalObjects: NetworkPolicy and ServiceMonitor appear only when enabled and point at the right ports.
func TestOptionalObjects(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		nps, sms := all[*networkingv1.NetworkPolicy](objs), all[*monitoringv1.ServiceMonitor](objs)
		if name != "everything" {
			if len(nps)+len(sms) != 0 {
				t.Errorf("disabled by default, yet %d NetworkPolicies and %d ServiceMonitors", len(nps), len(sms))
			}
			return
		}
		d := deployment(t, objs)
		np := find[*networkingv1.NetworkPolicy](t, objs, releaseName)
		if !selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
			t.Error("NetworkPolicy does not select meshwarden's pods")
		}
		open := map[int]bool{}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				open[p.Port.IntValue()] = len(r.From) == 0
			}
		}
		if !open[9443] || !open[8081] || open[8080] {
			t.Errorf("ingress open to all: %v; want webhook and health open, metrics only from metricsFrom", open)
		}
		sm := find[*monitoringv1.ServiceMonitor](t, objs, releaseName)
		svc := find[*corev1.Service](t, objs, releaseName+"-webhook")
		if !selects(t, &sm.Spec.Selector, svc.Labels) || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http-metrics" {
			t.Errorf("ServiceMonitor %+v does not scrape the Service's http-metrics port", sm.Spec)
		}
	})
}

// TestHelmTestPod: the `helm test` hook calls the injector through its Service, trusting the
// webhook certificate's CA, and runs restricted.
func TestHelmTestPod(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		pod := find[*corev1.Pod](t, objs, releaseName+"-test-webhook")
		if pod.Annotations["helm.sh/hook"] != "test" {
			t.Errorf("annotations %v: not a helm test hook", pod.Annotations)
		}
		c := pod.Spec.Containers[0]
		checkRestricted(t, "test pod", pod.Spec, c)
		var url string
		for _, e := range c.Env {
			if e.Name == "URL" {
				url = e.Value
			}
		}
		if want := "https://" + releaseName + "-webhook." + releaseNS + ".svc:443/inject"; url != want {
			t.Errorf("test calls %q, want %q", url, want)
		}
		if !strings.Contains(strings.Join(c.Args, " "), "--cacert /certs/ca.crt") {
			t.Error("test does not verify the webhook's certificate")
		}
		d := deployment(t, objs)
		if got, want := volume(t, pod.Spec, "ca").Secret.SecretName, volume(t, d.Spec.Template.Spec, "certs").Secret.SecretName; got != want {
			t.Errorf("test trusts Secret %q, meshwarden serves from %q", got, want)
		}
	})
}
