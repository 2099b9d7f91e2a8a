package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMutatingWebhookConfiguration(t *testing.T) {
	tests := map[string]struct {
		opts       WebhookOptions
		wantPolicy admissionv1.FailurePolicyType
		wantExcl   []string
	}{
		"defaults": {
			opts:       WebhookOptions{BaseURL: "https://127.0.0.1:1"},
			wantPolicy: admissionv1.Fail,
			wantExcl:   []string{"kube-system", "kube-public", "kube-node-lease", "meshwarden"},
		},
		"ignore, own namespace": {
			opts:       WebhookOptions{BaseURL: "https://127.0.0.1:1", InjectFailurePolicy: admissionv1.Ignore, OwnNamespace: "mesh"},
			wantPolicy: admissionv1.Ignore,
			wantExcl:   []string{"kube-system", "kube-public", "kube-node-lease", "mesh"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := MutatingWebhookConfiguration(tc.opts)
			w := m.Webhooks[0]
			got := map[string]any{
				"label":  m.Labels[partOfLabel],
				"url":    *w.ClientConfig.URL,
				"policy": *w.FailurePolicy,
				"reinv":  *w.ReinvocationPolicy,
				"ops":    w.Rules[0].Operations,
				"res":    w.Rules[0].Resources,
				"ns":     w.NamespaceSelector.MatchExpressions,
				"obj":    w.ObjectSelector.MatchExpressions,
			}
			want := map[string]any{
				"label":  "meshwarden",
				"url":    "https://127.0.0.1:1/inject",
				"policy": tc.wantPolicy,
				"reinv":  admissionv1.IfNeededReinvocationPolicy,
				"ops":    []admissionv1.OperationType{admissionv1.Create},
				"res":    []string{"pods"},
				"ns": []metav1.LabelSelectorRequirement{
					{Key: "meshwarden.io/inject", Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}},
					{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: tc.wantExcl},
				},
				"obj": []metav1.LabelSelectorRequirement{
					{Key: "sidecar.meshwarden.io/inject", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}},
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mutating webhook (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidatingWebhookConfiguration(t *testing.T) {
	v := ValidatingWebhookConfiguration(WebhookOptions{BaseURL: "https://127.0.0.1:1"})
	w := v.Webhooks[0]
	got := []string{*w.ClientConfig.URL, string(*w.FailurePolicy), v.Labels[partOfLabel]}
	if diff := cmp.Diff([]string{"https://127.0.0.1:1/validate", "Ignore", "meshwarden"}, got); diff != "" {
		t.Errorf("validating webhook (-want +got):\n%s", diff)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p == 0 {
			t.Fatalf("ports not distinct or zero: %v", ports)
		}
		seen[p] = true
	}
}

// A crashed run leaves a pidfile; the next run kills that process only if it runs from binDir.
func TestKillStale(t *testing.T) {
	bin, dir := t.TempDir(), t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	copied := filepath.Join(bin, "sleep")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, b, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(path string) *exec.Cmd {
		cmd := exec.Command(path, "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	ours, foreign := start(copied), start(sleep)
	for name, cmd := range map[string]*exec.Cmd{"ours": ours, "foreign": foreign} {
		if err := os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	killStale(dir, bin)
	done := make(chan error, 1)
	go func() { done <- ours.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("process started from binDir survived killStale")
	}
	if err := foreign.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("process outside binDir was killed: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(left) != 0 {
		t.Errorf("pidfiles left: %v", left)
	}
}
