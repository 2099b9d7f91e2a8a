package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChartRelease is where InstallChartOnRealNode puts meshwarden: the chart's own defaults.
const (
	ChartNamespace = "meshwarden"
	ChartRelease   = "meshwarden"
	// chartWebhookService is the chart's Service for both webhooks (<fullname>-webhook).
	chartWebhookService = ChartRelease + "-webhook"
)

// Helm runs bin/helm against the cluster, with helm's cache and config under the run directory.
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	home := filepath.Join(c.dir, "helm")
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "helm"), append(args, "--kubeconfig", c.kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// InstallChartOnRealNode installs meshwarden's chart (charts/meshwarden) as release meshwarden in
// namespace meshwarden, its pods on the real node, with the chart's defaults otherwise: the images
// are those make images tags with the chart's appVersion, which the node must have imported. extra
// are more helm flags (--set ...). It returns once the Deployment has every replica ready.
func (c *Cluster) InstallChartOnRealNode(ctx context.Context, extra ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := append([]string{"install", ChartRelease, filepath.Join(root, "charts", "meshwarden"),
		"--namespace", ChartNamespace, "--create-namespace",
		"--set-string", "nodeSelector." + strings.ReplaceAll(RealNodeLabel, ".", `\.`) + "=" + RealNodeValue,
		"--set", "tolerations[0].key=" + RealNodeTaint, "--set", "tolerations[0].operator=Exists"}, extra...)
	if _, err := c.Helm(ctx, args...); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		// Ready pods, and their addresses in the webhook Service's endpoints, from which the API server
		// picks a pod to call: before that, a failurePolicy Fail webhook refuses every pod.
		d, err := c.client.AppsV1().Deployments(ChartNamespace).Get(ctx, ChartRelease, metav1.GetOptions{})
		if err == nil && d.Spec.Replicas != nil && d.Status.ObservedGeneration >= d.Generation &&
			d.Status.ReadyReplicas >= *d.Spec.Replicas && c.readyEndpoints(ctx) >= int(*d.Spec.Replicas) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pods, _, _ := c.Kubectl(context.Background(), "-n", ChartNamespace, "describe", "pods")
			logs, _, _ := c.Kubectl(context.Background(), "-n", ChartNamespace, "logs", "-l", "app.kubernetes.io/name=meshwarden", "--tail=30", "--prefix")
			return fmt.Errorf("meshwarden's Deployment not ready within 3 minutes (%v):\n%s\n%s", err, pods, logs)
		}
		time.Sleep(time.Second)
	}
}

// readyEndpoints counts the ready addresses behind the chart's webhook Service.
func (c *Cluster) readyEndpoints(ctx context.Context) int {
	slices, err := c.client.DiscoveryV1().EndpointSlices(ChartNamespace).List(ctx,
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + chartWebhookService})
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n += len(e.Addresses)
			}
		}
	}
	return n
}
