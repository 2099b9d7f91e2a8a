package e2e

// The kubelet's part, for a pod on a kwok node: resolve a container's env and args from the pod,
// materialise its volumes as files, and run its program in a network namespace of the test's own,
// as the container's user. This is how the istio profile's proxy is run against real istiod: the
// pod is taken exactly as meshwarden injected it, and nothing here knows what meshwarden put in it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// podNetns is a pod's network namespace and the node's, joined by a veth pair as a CNI plugin would:
// the pod's IP on its eth0, the node reaching it through a link-local next hop. Both exist only
// for the test, so the pod's address never appears in the host's namespace.
type podNetns struct {
	pod, node string
	podIP     string
}

var netnsCounter atomic.Int32

// requireRoot skips without what network namespaces need; CI runs as root and must not skip.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("needs %v (make deps installs the tools; run as root)", missing)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func newPodNetns(t *testing.T, podIP string) *podNetns {
	t.Helper()
	n := netnsCounter.Add(1)
	p := &podNetns{pod: fmt.Sprintf("mwe-%d-%d-pod", os.Getpid(), n), node: fmt.Sprintf("mwe-%d-%d-node", os.Getpid(), n), podIP: podIP}
	for _, ns := range []string{p.pod, p.node} {
		mustRun(t, "", "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	const nodeAddr = "169.254.77.1"
	mustRun(t, "", "ip", "link", "add", "eth0", "netns", p.pod, "type", "veth", "peer", "name", "eth0", "netns", p.node)
	mustRun(t, fmt.Sprintf("link set lo up\nlink set eth0 up\naddr add %s/32 dev eth0\nroute add %s/32 dev eth0\nroute add default via %s dev eth0\n",
		podIP, nodeAddr, nodeAddr), "ip", "-n", p.pod, "-batch", "-")
	mustRun(t, fmt.Sprintf("link set lo up\nlink set eth0 up\naddr add %s/32 dev eth0\nroute add %s/32 dev eth0\n", nodeAddr, podIP),
		"ip", "-n", p.node, "-batch", "-")
	return p
}

func mustRun(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The pod's and node's namespaces are reached with test/cluster's netns helpers.
var (
	listenIn = cluster.ListenInNetns
	dialIn   = cluster.DialInNetns
)

// containerEnv resolves a container's env as the kubelet does for the fields the downward API
// offers a pod on this node. An env source this helper does not know fails the test: silently
// leaving a variable out would hide a template change.
func containerEnv(t *testing.T, pod *corev1.Pod, c *corev1.Container, nodeCPU, nodeMemory string) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		v := e.Value
		switch src := e.ValueFrom; {
		case src == nil:
			v = expandVars(v, env)
		case src.FieldRef != nil:
			switch src.FieldRef.FieldPath {
			case "metadata.name":
				v = pod.Name
			case "metadata.namespace":
				v = pod.Namespace
			case "status.podIP":
				v = pod.Status.PodIP
			case "status.hostIP":
				v = pod.Status.HostIP
			case "spec.serviceAccountName":
				v = pod.Spec.ServiceAccountName
			case "spec.nodeName":
				v = pod.Spec.NodeName
			default:
				t.Fatalf("env %s: fieldRef %s is not resolved by this test's kubelet", e.Name, src.FieldRef.FieldPath)
			}
		case src.ResourceFieldRef != nil:
			// Without limits the kubelet gives the node's allocatable amount.
			q, ok := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(src.ResourceFieldRef.Resource, "limits."))]
			v = nodeCPU
			if strings.HasSuffix(src.ResourceFieldRef.Resource, "memory") {
				v = nodeMemory
			}
			if ok {
				v = q.String()
			}
		default:
			t.Fatalf("env %s: source %+v is not resolved by this test's kubelet", e.Name, src)
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandVars replaces $(NAME) with the value of an earlier variable, as the kubelet expands args.
func expandVars(s string, env []string) string {
	vals := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vals[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// materialiseVolumes writes each volume the container mounts under root, at its mount path, as
// the kubelet would: emptyDirs as directories, projected service-account tokens from a real
// TokenRequest with the volume's audience, ConfigMaps and the downward API as files. Everything is
// owned by uid, the container's user.
func materialiseVolumes(ctx context.Context, t *testing.T, pod *corev1.Pod, c *corev1.Container, root string, uid int) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Fatalf("volumeMount %s names no volume of the pod", m.Name)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		switch {
		case v.EmptyDir != nil:
		case v.ConfigMap != nil:
			cm, err := env.Client().CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", v.Name, err)
			}
			for k, val := range cm.Data {
				files[k] = []byte(val)
			}
		case v.DownwardAPI != nil:
			for _, it := range v.DownwardAPI.Items {
				switch it.FieldRef.FieldPath {
				case "metadata.labels":
					files[it.Path] = []byte(formatMap(pod.Labels))
				case "metadata.annotations":
					files[it.Path] = []byte(formatMap(pod.Annotations))
				default:
					t.Fatalf("volume %s: downward API field %s is not resolved by this test's kubelet", v.Name, it.FieldRef.FieldPath)
				}
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					tok := src.ServiceAccountToken
					var aud []string // empty: the API server's own audience
					if tok.Audience != "" {
						aud = []string{tok.Audience}
					}
					req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
						Audiences:         aud,
						ExpirationSeconds: tok.ExpirationSeconds,
						BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
					}}
					got, err := env.Client().CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
					if err != nil {
						t.Fatalf("volume %s: TokenRequest for %s with audience %q: %v", v.Name, pod.Spec.ServiceAccountName, tok.Audience, err)
					}
					files[tok.Path] = []byte(got.Status.Token)
				case src.ConfigMap != nil:
					cm, err := env.Client().CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
					if err != nil {
						t.Fatalf("volume %s: %v", v.Name, err)
					}
					for _, it := range src.ConfigMap.Items {
						files[it.Path] = []byte(cm.Data[it.Key])
					}
				case src.DownwardAPI != nil:
					for _, it := range src.DownwardAPI.Items {
						if it.FieldRef == nil || it.FieldRef.FieldPath != "metadata.namespace" {
							t.Fatalf("volume %s: downward API item %s is not resolved by this test's kubelet", v.Name, it.Path)
						}
						files[it.Path] = []byte(pod.Namespace)
					}
				default:
					t.Fatalf("volume %s: a projected source of this kind is not resolved by this test's kubelet", v.Name)
				}
			}
		default:
			t.Fatalf("volume %s: this kind of volume is not resolved by this test's kubelet", v.Name)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	chownAll(t, root, uid)
}

// formatMap writes labels or annotations as the kubelet's downward API volume does: sorted
// key="quoted value" lines.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

func chownAll(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func uidOf(t *testing.T, c *corev1.Container) int {
	t.Helper()
	if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil {
		t.Fatalf("container %s sets no runAsUser", c.Name)
	}
	return int(*c.SecurityContext.RunAsUser)
}

func itoa(n int) string { return strconv.Itoa(n) }
