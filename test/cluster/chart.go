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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChartRelease is where InstallChartOnRealNode puts meshwarden: the chart's own defaults.
const (
	ChartNamespace = "meshwarden"
	ChartRelease   = "meshwarden"
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
		d, err := c.client.AppsV1().Deployments(ChartNamespace).Get(ctx, ChartRelease, metav1.GetOptions{})
		if err == nil && d.Spec.Replicas != nil && d.Status.ReadyReplicas >= *d.Spec.Replicas {
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
