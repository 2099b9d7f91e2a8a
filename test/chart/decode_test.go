package chart

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/config"
)

// rendered renders every golden case once per test binary run, decoded.
var renderedCache = map[string][]object{}

func rendered(t *testing.T, name string) []object {
	t.Helper()
	if objs, ok := renderedCache[name]; ok {
		return objs
	}
	objs := decodeAll(t, render(t, goldenCases[name]))
	renderedCache[name] = objs
	return objs
}

// forEachCase runs f for every golden case as a subtest (sequentially: rendered caches renders).
func forEachCase(t *testing.T, f func(t *testing.T, name string, objs []object)) {
	for _, name := range caseNames() {
		t.Run(name, func(t *testing.T) { f(t, name, rendered(t, name)) })
	}
}

// TestDecodeStrict: every rendered document is a kind the scheme knows (client-go's, cert-manager's,
// prometheus-operator's ServiceMonitor) and decodes with no unknown or duplicate field.
func TestDecodeStrict(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		if len(objs) == 0 {
			t.Fatal("nothing rendered")
		}
		for _, o := range objs {
			m, err := meta.Accessor(o.obj)
			if err != nil {
				t.Fatalf("%s: %v", describe(o), err)
			}
			if got := m.GetLabels()["app.kubernetes.io/part-of"]; got != "meshwarden" {
				t.Errorf("%s: label app.kubernetes.io/part-of = %q, want meshwarden", describe(o), got)
			}
			namespaced := o.gvk.Kind != "ClusterRole" && o.gvk.Kind != "ClusterRoleBinding" &&
				o.gvk.Kind != "MutatingWebhookConfiguration" && o.gvk.Kind != "ValidatingWebhookConfiguration"
			if namespaced && m.GetNamespace() != releaseNS {
				t.Errorf("%s: namespace %q, want the release namespace %q", describe(o), m.GetNamespace(), releaseNS)
			}
			if !namespaced && m.GetNamespace() != "" {
				t.Errorf("%s is cluster-scoped but has namespace %q", describe(o), m.GetNamespace())
			}
		}
	})
}

// loadConfig returns the config file the chart renders, loaded, defaulted and validated by
// meshwarden's own config package (strict: an unknown field fails).
func loadConfig(t *testing.T, objs []object) *config.Config {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, objs, releaseName+"-config")
	data, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", cm.Name)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("meshwarden refuses the chart's config file: %v\n%s", err, data)
	}
	return cfg
}

// TestConfigFile: the rendered config file loads in meshwarden, and the names in it agree with the
// objects the chart creates.
func TestConfigFile(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		cfg := loadConfig(t, objs)
		if cfg.Namespace != releaseNS {
			t.Errorf("namespace = %q, want %q", cfg.Namespace, releaseNS)
		}
		svc := find[*corev1.Service](t, objs, releaseName+"-webhook")
		if cfg.Certs.ServiceName != svc.Name {
			t.Errorf("certs.serviceName = %q, the webhook Service is %q", cfg.Certs.ServiceName, svc.Name)
		}
		sel, err := labels.Parse(cfg.Certs.WebhookSelector)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			isWebhook := o.gvk.Kind == "MutatingWebhookConfiguration" || o.gvk.Kind == "ValidatingWebhookConfiguration"
			m, _ := meta.Accessor(o.obj)
			if isWebhook && !sel.Matches(labels.Set(m.GetLabels())) {
				t.Errorf("certs.webhookSelector %q does not select %s", sel, describe(o))
			}
		}
		pod := deployment(t, objs).Spec.Template.Spec
		certVol := volume(t, pod, "certs")
		if cfg.Certs.Mode != config.CertFiles && certVol.Secret.SecretName != cfg.Certs.SecretName {
			t.Errorf("certs volume mounts Secret %q, config certs.secretName is %q", certVol.Secret.SecretName, cfg.Certs.SecretName)
		}
		if got := mountPath(t, pod, "certs"); got != cfg.Certs.Dir {
			t.Errorf("certs mounted at %q, config certs.dir is %q", got, cfg.Certs.Dir)
		}
		if cfg.Injection.TemplatesDir != "" {
			if got := mountPath(t, pod, "templates"); got != cfg.Injection.TemplatesDir {
				t.Errorf("templates mounted at %q, config injection.templatesDir is %q", got, cfg.Injection.TemplatesDir)
			}
		}
		if want := map[string]config.CertMode{"cert-manager": config.CertCertManager, "everything": config.CertFiles}[name]; want != "" && cfg.Certs.Mode != want {
			t.Errorf("certs.mode = %q, want %q", cfg.Certs.Mode, want)
		}
		// Both profiles are covered: everything runs envoy, every other case the default, istio.
		wantProfile := config.ProfileIstio
		if name == "everything" {
			wantProfile = config.ProfileEnvoy
		}
		if cfg.Injection.Profile != wantProfile {
			t.Errorf("injection.profile = %q, want %q", cfg.Injection.Profile, wantProfile)
		}
	})
}

// TestCustomTemplates: user templates reach the mounted ConfigMap byte for byte, named <name>.yaml
// as meshwarden's template loader expects, and are listed in the default templates.
func TestCustomTemplates(t *testing.T) {
	objs := rendered(t, "custom-templates")
	var values struct {
		Injection struct {
			CustomTemplates map[string]string `json:"customTemplates"`
		} `json:"injection"`
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "values", "custom-templates.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	cm := find[*corev1.ConfigMap](t, objs, releaseName+"-templates")
	if len(cm.Data) != len(values.Injection.CustomTemplates) {
		t.Errorf("templates ConfigMap has %d keys, values have %d templates", len(cm.Data), len(values.Injection.CustomTemplates))
	}
	for n, text := range values.Injection.CustomTemplates {
		if got := cm.Data[n+".yaml"]; got != text {
			t.Errorf("template %s.yaml = %q, want the value verbatim %q", n, got, text)
		}
	}
	cfg := loadConfig(t, objs)
	if want := []string{"istio", "audit"}; !equalStrings(cfg.Injection.Templates, want) {
		t.Errorf("injection.templates = %q, want %q", cfg.Injection.Templates, want)
	}
	pod := deployment(t, objs).Spec.Template.Spec
	if v := volume(t, pod, "templates"); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("templates volume %+v does not mount ConfigMap %s", v, cm.Name)
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == "templates" && m.SubPath != "" {
			t.Error("templates are mounted with subPath, which never sees ConfigMap updates")
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
