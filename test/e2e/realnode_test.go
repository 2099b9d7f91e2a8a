package e2e

// End-to-end tests on a real node: a kubelet runs the pods meshwarden injects, with containerd and
// runc, in network namespaces of the run's own. Each check is something a kwok node never shows.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshwarden/meshwarden/hack/images"
	"github.com/meshwarden/meshwarden/test/cluster"
)

// realNodeEnv is the suite's real node, started by the first test that needs it.
var realNodeEnv struct {
	once   sync.Once
	node   *cluster.RealNode
	images map[string]string // name → reference
	err    error
}

// realNode returns the suite's real node, or skips (fails under CI) where one cannot run.
func realNode(t *testing.T) (*cluster.RealNode, map[string]string) {
	t.Helper()
	missing := append(cluster.MissingNodeTools(env.BinDir()), cluster.MissingIstioTools(env.BinDir())...)
	if len(missing) > 0 {
		msg := fmt.Sprintf("the real node needs %v: run as root after make deps node-tools istio-tools (make test does)", missing)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	realNodeEnv.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := images.Build(ctx, images.Options{Arch: runtime.GOARCH, Epoch: time.Unix(0, 0).UTC(), OutDir: filepath.Join(env.Dir(), "images")},
			images.NodeImages(env.BinDir())...)
		if err != nil {
			realNodeEnv.err = err
			return
		}
		realNodeEnv.images = map[string]string{}
		var tarballs []string
		for _, r := range res {
			tarballs = append(tarballs, r.Path)
			realNodeEnv.images[r.Image.Name] = r.Image.Ref()
		}
		realNodeEnv.node, realNodeEnv.err = env.StartRealNode(ctx, cluster.RealNodeOptions{Images: tarballs, PauseImage: realNodeEnv.images["pause"]})
		if realNodeEnv.err != nil {
			return
		}
		// The pods resolve istiod's name to the node (onRealNode), whose forwarder carries the
		// connection to the suite's istiod on the host's loopback.
		is, err := startSuiteIstiod()
		if err != nil {
			realNodeEnv.err = err
			return
		}
		realNodeEnv.err = realNodeEnv.node.Forward(net.JoinHostPort(realNodeEnv.node.IP(), "15012"), is.SecureGRPCAddr())
	})
	if realNodeEnv.err != nil {
		t.Fatal(realNodeEnv.err)
	}
	return realNodeEnv.node, realNodeEnv.images
}

// suiteIstio is the suite's istiod, started by the first test that needs one; env.Stop stops it.
var suiteIstio struct {
	once   sync.Once
	istiod *cluster.Istiod
	err    error
}

func startSuiteIstiod() (*cluster.Istiod, error) {
	suiteIstio.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		suiteIstio.istiod, suiteIstio.err = cluster.StartIstiod(ctx, env, cluster.IstiodOptions{})
	})
	return suiteIstio.istiod, suiteIstio.err
}

// suiteIstiod returns the suite's istiod, or skips (fails under CI) without istio tools.
func suiteIstiod(t *testing.T) *cluster.Istiod {
	t.Helper()
	if missing := cluster.MissingIstioTools(env.BinDir()); len(missing) > 0 {
		msg := fmt.Sprintf("istio tools missing from %s: %v; run `make istio-tools` (make test does)", env.BinDir(), missing)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	is, err := startSuiteIstiod()
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// onRealNode puts a pod template on the real node, with the proxy image of the tests and istiod's
// name resolving to the node, where a forwarder carries it to the test's istiod.
func onRealNode(tmpl *corev1.PodTemplateSpec, node *cluster.RealNode, imgs map[string]string) {
	tmpl.Spec.NodeSelector = map[string]string{cluster.RealNodeLabel: cluster.RealNodeValue}
	tmpl.Spec.Tolerations = []corev1.Toleration{{Key: cluster.RealNodeTaint, Operator: corev1.TolerationOpExists}}
	tmpl.Spec.HostAliases = []corev1.HostAlias{{IP: node.IP(), Hostnames: []string{"istiod.istio-system.svc"}}}
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations["sidecar.meshwarden.io/proxyImage"] = imgs["meshwarden-test-istio-proxy"]
}

func testApp(imgs map[string]string, args ...string) corev1.Container {
	return corev1.Container{
		Name: "app", Image: imgs["meshwarden-test-app"], ImagePullPolicy: corev1.PullIfNotPresent, Args: args,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
			PeriodSeconds: 1},
	}
}

// TestRealNodeIstioPod: a Deployment's pod injected with the istio profile really runs. The kubelet
// runs meshwarden-init, which exits 0 and leaves the capture ruleset in the pod's network namespace;
// starts the native-sidecar proxy before the app; the agent gets its certificate and configuration
// from istiod; the kubelet's rewritten readiness probe passes through pilot-agent; and the app's
// outbound TCP reaches the proxy with its original destination.
func TestRealNodeIstioPod(t *testing.T) {
	ctx, ns := setup(t, enabled)
	node, imgs := realNode(t)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	istiod := suiteIstiod(t)

	dep := deployment("web")
	dep.Spec.Template.Spec.Containers = []corev1.Container{testApp(imgs)}
	onRealNode(&dep.Spec.Template, node, imgs)
	if _, err := env.Client().AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitReady(ctx, t, ns, "web")

	init, proxy, app := initStatus(pod, initName), initStatus(pod, proxyName), containerStatus(pod, "app")
	if init == nil || init.State.Terminated == nil || init.State.Terminated.ExitCode != 0 {
		t.Errorf("%s status %+v, want terminated with exit code 0", initName, init)
	}
	if proxy == nil || proxy.State.Running == nil || proxy.Started == nil || !*proxy.Started || !proxy.Ready {
		t.Fatalf("proxy status %+v, want running, started and ready", proxy)
	}
	if app == nil || app.State.Running == nil || app.State.Running.StartedAt.Before(&proxy.State.Running.StartedAt) {
		t.Errorf("app started at %v, proxy at %v: the app must start after the proxy", app, proxy.State.Running.StartedAt)
	}
	probe := findContainer(pod, "app").ReadinessProbe.HTTPGet
	if probe.Path != "/app-health/app/readyz" || probe.Port.IntValue() != 15020 {
		t.Errorf("app's readiness probe %s on %s, want the agent's /app-health/app/readyz on 15020", probe.Path, probe.Port.String())
	}

	appPID := taskPID(ctx, t, node, app.ContainerID)
	netnsPath := fmt.Sprintf("/proc/%d/ns/net", appPID)
	t.Run("capture ruleset in the pod's network namespace", func(t *testing.T) {
		out := mustRun(t, "", "nsenter", "--net="+netnsPath, "nft", "list", "ruleset")
		for _, want := range []string{"meshwarden", "redirect to :15001", "redirect to :15006"} {
			if !strings.Contains(out, want) {
				t.Errorf("pod's ruleset lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("the app's outbound reaches the proxy with its original destination", func(t *testing.T) {
		var line string
		err := cluster.InNetnsPath(netnsPath, func() error {
			c, err := net.DialTimeout("tcp", "10.96.0.10:80", 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil || strings.TrimSpace(line) != "standin:15001 10.96.0.10:80" {
			t.Errorf("outbound connection from the pod answered %q (%v), want the proxy's outbound listener with the original destination", line, err)
		}
	})
	t.Run("the proxy got its certificate and configuration from istiod", func(t *testing.T) {
		proxyPID := taskPID(ctx, t, node, proxy.ContainerID)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/istio/proxy/envoy-standin-report.json", proxyPID))
		if err != nil {
			t.Fatal(err)
		}
		var r standinReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		rootPEM, err := istiod.RootCertPEM(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		leaf := verifyChain(t, r.CertChainPEM, rootPEM)
		if want := "spiffe://cluster.local/ns/" + ns + "/sa/default"; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			t.Errorf("workload certificate URIs %v, want %s", leaf.URIs, want)
		}
		if !r.BootstrapValid || !r.Done || !strings.HasPrefix(r.NodeID, "sidecar~"+pod.Status.PodIP+"~") {
			t.Errorf("stand-in report: valid %v, done %v, node %s", r.BootstrapValid, r.Done, r.NodeID)
		}
	})
}

// TestRealNodeJobCompletes: an injected Job's pod completes when its app exits, while its native
// sidecar proxy was running beside it: the proxy never holds a Job open.
func TestRealNodeJobCompletes(t *testing.T) {
	ctx, ns := setup(t, enabled)
	node, imgs := realNode(t)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	suiteIstiod(t)
	j := job("batch")
	app := testApp(imgs, "--exit-after=3s")
	app.ReadinessProbe = nil
	j.Spec.Template.Spec.Containers = []corev1.Container{app}
	onRealNode(&j.Spec.Template, node, imgs)
	if _, err := env.Client().BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		got, err := env.Client().BatchV1().Jobs(ns).Get(ctx, "batch", metav1.GetOptions{})
		if err == nil {
			for _, c := range got.Status.Conditions {
				if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
					pods := waitPods(ctx, t, ns, "batch", 1)
					proxy, app := initStatus(&pods[0], proxyName), containerStatus(&pods[0], "app")
					if proxy == nil || app == nil || proxy.State.Terminated == nil || app.State.Terminated == nil {
						t.Fatalf("after completion: proxy %+v, app %+v, want both terminated", proxy, app)
					}
					// The proxy ran before the app and until after it: the app had its network
					// throughout, and the kubelet stopped the proxy (exit 0) once the app was done.
					p, a := proxy.State.Terminated, app.State.Terminated
					if a.ExitCode != 0 || p.ExitCode != 0 || a.StartedAt.Before(&p.StartedAt) || p.FinishedAt.Before(&a.FinishedAt) {
						t.Errorf("proxy ran %v–%v (exit %d), app %v–%v (exit %d): want the proxy around the app, both exit 0",
							p.StartedAt, p.FinishedAt, p.ExitCode, a.StartedAt, a.FinishedAt, a.ExitCode)
					}
					return
				}
				if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
					t.Fatalf("Job failed: %s", c.Message)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the injected Job did not complete; events:\n%s", events(ns))
}

// waitReady waits for the app's pod to be Ready and returns it.
func waitReady(ctx context.Context, t *testing.T, ns, app string) *corev1.Pod {
	t.Helper()
	var last corev1.Pod
	for ctx.Err() == nil {
		for _, p := range waitPods(ctx, t, ns, app, 1) {
			last = p
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return &p
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last.Status, "", "  ")
	t.Fatalf("%s/%s pod not Ready; status:\n%s\nevents:\n%s", ns, app, b, events(ns))
	return nil
}

func initStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// taskPID is the host PID of a container's process, from containerd.
func taskPID(ctx context.Context, t *testing.T, node *cluster.RealNode, containerID string) int {
	t.Helper()
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := node.Ctr(ctx, "tasks", "ls")
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == id {
			if pid, err := strconv.Atoi(f[1]); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("container %s not among containerd's tasks:\n%s", id, out)
	return 0
}
