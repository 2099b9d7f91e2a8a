package inject

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/templates"
)

// TestMergeKeysAreTheAPIServers: a template container merged into the user's container of the same
// name adds list entries by the keys the API server merges by: ports by port and protocol (UDP/53
// beside the user's TCP/53), envFrom by the whole source (two sources without a prefix are two), env by
// name; an empty field of the template (`resources: {}`) adds nothing.
func TestMergeKeysAreTheAPIServers(t *testing.T) {
	dir := t.TempDir()
	tmpl := `spec:
  containers:
  - name: app
    resources: {}
    env:
    - {name: FROM_TEMPLATE, value: "1"}
    - {name: USER_SET, value: template}
    envFrom:
    - configMapRef: {name: shared}
    - configMapRef: {name: extra}
    ports:
    - {containerPort: 53, protocol: UDP, name: dns-udp}
    - {containerPort: 53, name: dns-tcp-template}
`
	if err := os.WriteFile(filepath.Join(dir, "app-extras.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := templates.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Injection.Templates = []string{"istio", "app-extras"}
	in, err := New(cfg, StaticTemplates{Set: set})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"metadata":{"name":"p","namespace":"shop"},"spec":{"containers":[{"name":"app","image":"app:1",
		"env":[{"name":"USER_SET","value":"user"}],
		"envFrom":[{"configMapRef":{"name":"shared"}}],
		"ports":[{"containerPort":53,"name":"dns"}]}]}}`)
	pod, res := injectedPod(t, in, raw)
	if !res.Injected {
		t.Fatalf("not injected: %v %v", res.Reason, res.Denied)
	}
	app := findContainer(pod, "app")
	if diff := cmp.Diff([]corev1.EnvVar{{Name: "USER_SET", Value: "user"}, {Name: "FROM_TEMPLATE", Value: "1"}}, app.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	wantFrom := []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shared"}}},
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "extra"}}},
	}
	if diff := cmp.Diff(wantFrom, app.EnvFrom); diff != "" {
		t.Errorf("envFrom (-want +got):\n%s", diff)
	}
	wantPorts := []corev1.ContainerPort{{Name: "dns", ContainerPort: 53}, {Name: "dns-udp", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	if diff := cmp.Diff(wantPorts, app.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	for _, op := range res.Patch {
		if op.Path == "/spec/containers/0/resources" {
			t.Errorf("patch adds %s %s, want nothing (the template's resources are empty)", op.Path, op.Value)
		}
	}
	// A second pass (the facts of the istio profile now include the merged ports, so it may render
	// again) ends with the same containers: nothing is merged twice.
	raw2, _ := ApplyPatch(raw, res.Patch)
	pod2, _ := injectedPod(t, in, raw2)
	if diff := cmp.Diff(pod.Spec.Containers, pod2.Spec.Containers); diff != "" {
		t.Errorf("second pass changed the containers (-first +second):\n%s", diff)
	}
}
