package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// Fault tests (issue 9) on the real control plane. Figures they log are recorded in
// docs/reliability.md; `make faults` runs them at full size.

const statusAnnotation = "sidecar.meshwarden.io/status"

// injectWebhookLabel selects the API server's admission metrics of the inject webhook.
const injectWebhookLabel = `name="inject.meshwarden.io"`

// TestFaultRollingRestartUnderLoad restarts two webhook replicas one after the other, again and
// again, while Deployments in an opted-in namespace create pods through the API server with
// failurePolicy Fail. Every pod ever admitted must carry the sidecar, no webhook call may fail, and
// every ReplicaSet must converge. MESHWARDEN_FAULT_PODS sets the pod count (default 200; `make
// faults` uses 2000).
func TestFaultRollingRestartUnderLoad(t *testing.T) {
	_, ns := setup(t, enabled)
	// Registered after setup's cleanup, so it runs first: remove the pods before the namespace goes,
	// so the next test does not share the controller manager with thousands of deletions.
	t.Cleanup(func() { drainNamespace(t, ns) })
	total := faultEnvInt("MESHWARDEN_FAULT_PODS", 200)
	const perDeployment = 10
	deployments := (total + perDeployment - 1) / perDeployment
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute+time.Duration(total)*150*time.Millisecond)
	defer cancel()

	// MESHWARDEN_FAULT_HTTP2=1 runs the replicas with server.enableHTTP2 (graceful GOAWAY on shutdown)
	// to compare with the default HTTP/1.1.
	serverConfig := ""
	if os.Getenv("MESHWARDEN_FAULT_HTTP2") == "1" {
		serverConfig = "server:\n  enableHTTP2: true\n"
	}
	a := newFaultReplica(t, "rolling-a", serverConfig)
	b := newFaultReplica(t, "rolling-b", serverConfig)
	for _, r := range []*faultReplica{a, b} {
		if err := r.start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lb := newFaultLB(t)
	backends := map[*faultReplica]*lbBackend{a: lb.add(a.addr()), b: lb.add(b.addr())}
	useWebhookURL(ctx, t, lb.url())
	if err := waitInjectingIn(ctx, ns, time.Minute, nil); err != nil {
		t.Fatal(err)
	}

	// Watch every pod the API server admits in ns, so a pod admitted uninjected is seen even if it
	// were deleted again before the end.
	var admitted, uninjected atomic.Int64
	var uninjectedNames sync.Map
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		rv := ""
		for watchCtx.Err() == nil {
			w, err := env.Client().CoreV1().Pods(ns).Watch(watchCtx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				if ev.Type != watch.Added {
					continue
				}
				admitted.Add(1)
				if !injected(p) || p.Annotations[statusAnnotation] == "" {
					uninjected.Add(1)
					uninjectedNames.Store(p.Name, containerNames(p))
				}
			}
			w.Stop()
		}
	}()

	reqBefore, err := apiserverMetric(ctx, "apiserver_admission_webhook_request_total", injectWebhookLabel)
	if err != nil {
		t.Fatal(err)
	}
	rejBefore, _ := apiserverMetric(ctx, "apiserver_admission_webhook_rejection_count", injectWebhookLabel)

	// Restarts run until every ReplicaSet has converged (bounded in rounds and by ctx).
	loadDone := make(chan struct{})
	var rounds, restarts atomic.Int64
	restartErr := make(chan error, 1)
	go func() {
		defer close(restartErr)
		for round := 0; round < 40; round++ {
			for _, r := range []*faultReplica{a, b} {
				select {
				case <-loadDone:
					return
				default:
				}
				// Endpoint removal first, then SIGTERM, as a Deployment rollout behind a Service.
				backends[r].ready.Store(false)
				time.Sleep(time.Second)
				r.stop()
				if err := r.start(ctx); err != nil {
					restartErr <- err
					return
				}
				backends[r].ready.Store(true)
				restarts.Add(1)
				time.Sleep(500 * time.Millisecond)
			}
			rounds.Add(1)
		}
	}()

	// The load: Deployments created at a steady pace over at least 40s, so pod creation overlaps
	// several restarts, bounded in count (total pods) and time (ctx).
	start := time.Now()
	pace := max(40*time.Second, time.Duration(total)*30*time.Millisecond) / time.Duration(deployments)
	var createErrs int
	for i := range deployments {
		d := deployment(fmt.Sprintf("load-%03d", i))
		d.Spec.Replicas = ptr.To(int32(min(perDeployment, total-i*perDeployment)))
		if _, err := env.Client().AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			createErrs++
			t.Errorf("create Deployment %s: %v", d.Name, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("load loop: %v", ctx.Err())
		case <-time.After(pace):
		}
	}
	converged := waitReplicaSetsConverged(ctx, t, ns, deployments, total)
	loadTime := time.Since(start)
	close(loadDone)
	if err := <-restartErr; err != nil {
		t.Fatalf("restart a replica: %v", err)
	}
	time.Sleep(2 * time.Second) // let the watch see the last pods
	stopWatch()
	<-watchDone

	reqAfter, _ := apiserverMetric(ctx, "apiserver_admission_webhook_request_total", injectWebhookLabel)
	rejAfter, _ := apiserverMetric(ctx, "apiserver_admission_webhook_rejection_count", injectWebhookLabel)
	failedCreates := countEvents(ctx, t, ns, "FailedCreate")
	pods, err := env.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var existingUninjected []string
	for _, p := range pods.Items {
		if !injected(&p) {
			existingUninjected = append(existingUninjected, p.Name)
		}
	}
	t.Logf("FIGURES rolling restart: pods=%d existing=%d admitted=%d uninjected_admitted=%d uninjected_existing=%d "+
		"webhook_calls=%.0f webhook_failed=%.0f replicaset_failed_creates=%d replica_restarts=%d rounds=%d "+
		"replicasets_converged=%d/%d lb_no_backend=%d load_time=%s",
		total, len(pods.Items), admitted.Load(), uninjected.Load(), len(existingUninjected),
		reqAfter-reqBefore, rejAfter-rejBefore, failedCreates, restarts.Load(), rounds.Load(),
		converged, deployments, lb.refused.Load(), loadTime.Round(time.Second))

	if restarts.Load() < 2 {
		t.Errorf("only %d replica restarts happened during the load; want both replicas restarted at least once", restarts.Load())
	}
	if len(pods.Items) != total {
		t.Errorf("%d pods exist, want %d", len(pods.Items), total)
	}
	if n := uninjected.Load(); n > 0 {
		var names []string
		uninjectedNames.Range(func(k, v any) bool { names = append(names, fmt.Sprintf("%s %v", k, v)); return len(names) < 5 })
		t.Errorf("%d pods admitted without the sidecar, e.g. %v", n, names)
	}
	if len(existingUninjected) > 0 {
		t.Errorf("%d existing pods lack the sidecar, e.g. %v", len(existingUninjected), existingUninjected[:min(5, len(existingUninjected))])
	}
	if converged != deployments {
		t.Errorf("%d of %d ReplicaSets converged", converged, deployments)
	}
	if createErrs > 0 {
		t.Errorf("%d Deployments could not be created", createErrs)
	}
	// Before the drain on SIGTERM (commit 113340a), HTTP/1.1 lost about one call in three restarts:
	// Shutdown closed idle keep-alive connections under the API server's next POST (EOF).
	if f := rejAfter - rejBefore; f > 0 || failedCreates > 0 {
		t.Errorf("webhook calls failed during the rolling restart: %.0f rejected by the API server, %d FailedCreate events; logs %s, %s; events:\n%s",
			f, failedCreates, a.log, b.log, faultEventSample(ctx, ns, "FailedCreate", 3))
	}
}

// drainNamespace deletes ns's Deployments and pods (grace period 0) and waits, at most 3 minutes,
// until no pod is left.
func drainNamespace(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := env.Client()
	_ = c.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = c.AppsV1().ReplicaSets(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	for ctx.Err() == nil {
		_ = c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil && len(list.Items) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	t.Logf("pods of %s not all gone within 3m", ns)
}

// waitReplicaSetsConverged waits until the namespace's ReplicaSets together have total pods and each
// reports status.replicas equal to spec.replicas; it returns how many converged.
func waitReplicaSetsConverged(ctx context.Context, t *testing.T, ns string, want, total int) int {
	t.Helper()
	converged := 0
	for {
		list, err := env.Client().AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			converged = 0
			sum := 0
			for _, rs := range list.Items {
				sum += int(rs.Status.Replicas)
				if rs.Spec.Replicas != nil && rs.Status.Replicas == *rs.Spec.Replicas && rs.Status.ObservedGeneration == rs.Generation {
					converged++
				}
			}
			if len(list.Items) == want && converged == want && sum == total {
				return converged
			}
		}
		select {
		case <-ctx.Done():
			t.Errorf("ReplicaSets not converged: %d of %d (%v)", converged, want, ctx.Err())
			return converged
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func countEvents(ctx context.Context, t *testing.T, ns, reason string) int {
	t.Helper()
	list, err := env.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		n += int(max(e.Count, 1))
	}
	return n
}

func faultEventSample(ctx context.Context, ns, reason string, n int) string {
	list, err := env.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		return err.Error()
	}
	var s strings.Builder
	for i, e := range list.Items {
		if i == n {
			break
		}
		fmt.Fprintf(&s, "  %s: %s\n", e.InvolvedObject.Name, e.Message)
	}
	return s.String()
}

// TestFaultAllReplicasDown stops both replicas: pods outside opted-in namespaces are still created
// (kube-system and meshwarden's own namespace even when someone labels them), a Deployment in an
// opted-in namespace gets a clear FailedCreate naming the webhook, and one replica coming back is
// enough for the ReplicaSet to converge with injected pods.
func TestFaultAllReplicasDown(t *testing.T) {
	_, labelled := setup(t, enabled)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	plain := labelled + "-plain"
	if err := env.CreateNamespace(ctx, plain, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client().CoreV1().Namespaces().Delete(context.Background(), plain, metav1.DeleteOptions{})
	})
	a := newFaultReplica(t, "down-a", "")
	b := newFaultReplica(t, "down-b", "")
	for _, r := range []*faultReplica{a, b} {
		if err := r.start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lb := newFaultLB(t)
	lb.add(a.addr())
	lb.add(b.addr())
	useWebhookURL(ctx, t, lb.url())
	if err := waitInjectingIn(ctx, labelled, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	// Someone labels the system namespaces for injection: the webhook configuration must still keep
	// them out, or a down webhook would block its own pods (and kube-system's) from starting.
	for _, ns := range []string{"kube-system", mesh.Namespace} {
		labelNamespace(ctx, t, ns, injectLabel, "enabled")
	}

	a.stop()
	b.stop()
	downAt := time.Now()

	core := env.Client().CoreV1()
	for _, ns := range []string{plain, "kube-system", mesh.Namespace} {
		p := newPod("while-down").Pod
		p.GenerateName, p.Name = "fault-while-down-", ""
		got, err := core.Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("namespace %s: pod not created while every replica is down: %v", ns, err)
			continue
		}
		t.Cleanup(func() { _ = core.Pods(ns).Delete(context.Background(), got.Name, metav1.DeleteOptions{}) })
		if injected(got) {
			t.Errorf("namespace %s: pod injected while meshwarden is down: %v", ns, containerNames(got))
		}
	}

	_, err := core.Pods(labelled).Create(ctx, newPod("bare").Pod, metav1.CreateOptions{})
	if err == nil {
		t.Fatal("pod admitted in an opted-in namespace while every replica is down (failurePolicy Fail)")
	}
	for _, want := range []string{"failed calling webhook", `"inject.meshwarden.io"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("rejection lacks %q: %v", want, err)
		}
	}
	t.Logf("rejection while down: %v", err)

	d := deployment("while-down")
	d.Spec.Replicas = ptr.To[int32](3)
	if _, err := env.Client().AppsV1().Deployments(labelled).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	msg := waitReplicaFailure(ctx, t, labelled, 90*time.Second)
	if !strings.Contains(msg, "inject.meshwarden.io") {
		t.Errorf("the ReplicaSet's failure does not name the webhook: %s", msg)
	}

	// One replica back is enough.
	if err := a.start(ctx); err != nil {
		t.Fatal(err)
	}
	backAt := time.Now()
	pods := waitPods(ctx, t, labelled, "while-down", 3)
	recovered := time.Since(backAt)
	for _, p := range pods {
		if !injected(&p) {
			t.Errorf("pod %s created after recovery lacks the sidecar: %v", p.Name, containerNames(&p))
		}
	}
	t.Logf("FIGURES all replicas down: outage=%s deployment_converged_after_one_replica_back=%s",
		backAt.Sub(downAt).Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
}

func labelNamespace(ctx context.Context, t *testing.T, ns, key, value string) {
	t.Helper()
	patch := func(v any) []byte {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: v}}})
		return b
	}
	if _, err := env.Client().CoreV1().Namespaces().Patch(ctx, ns, "application/merge-patch+json", patch(value), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Client().CoreV1().Namespaces().Patch(context.Background(), ns, "application/merge-patch+json", patch(nil), metav1.PatchOptions{})
	})
}

// waitReplicaFailure waits until a ReplicaSet in ns says why it cannot create pods, in a FailedCreate
// Event or its ReplicaFailure condition (Events are best effort: a busy controller manager
// throttles them), and returns the message.
func waitReplicaFailure(ctx context.Context, t *testing.T, ns string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := env.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
		if err == nil && len(list.Items) > 0 {
			return list.Items[0].Message
		}
		rss, err := env.Client().AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, rs := range rss.Items {
				for _, c := range rs.Status.Conditions {
					if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
						return c.Message
					}
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("no FailedCreate event or ReplicaFailure condition in %s within %s; events:\n%s", ns, timeout, events(ns))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestFaultTemplateDirBroken runs a replica with --templates-dir on a ConfigMap-style directory
// (files behind a ..data symlink that is swapped atomically): a valid change is picked up, a
// broken one leaves the previous set in force with a log line and
// meshwarden_templates_load_errors_total counting it, and injection never stops.
func TestFaultTemplateDirBroken(t *testing.T) {
	_, ns := setup(t, enabled)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(filepath.Join(root, "templates", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.Dir(), "faults", "templates")
	cm := configMapDir{t: t, dir: dir}
	// Revision 1: the default template with a comment, so its revision differs from the default.
	cm.write(map[string]string{"sidecar.yaml": string(valid) + "\n{{- /* revision one */ -}}\n"})
	const templatesCM = "meshwarden-templates"
	r := newFaultReplica(t, "templates", "injection:\n  templatesConfigMap: "+templatesCM+"\n", "--templates-dir="+dir)
	if err := r.start(ctx); err != nil {
		t.Fatal(err)
	}
	useWebhookURL(ctx, t, "https://"+r.addr())
	rev1 := injectedRevision(ctx, t, ns, "")

	// A valid change is picked up: proof that the directory is watched.
	cm.write(map[string]string{"sidecar.yaml": string(valid) + "\n{{- /* revision two */ -}}\n"})
	rev2 := injectedRevision(ctx, t, ns, rev1)

	errsBefore, err := r.metric(ctx, "meshwarden_templates_load_errors_total")
	if err != nil {
		t.Fatal(err)
	}
	brokenAt := time.Now()
	cm.write(map[string]string{"sidecar.yaml": string(valid) + "\n{{ if .Values.ProxyName }}unterminated\n"})
	var errsAfter float64
	for {
		errsAfter, err = r.metric(ctx, "meshwarden_templates_load_errors_total")
		if err == nil && errsAfter > errsBefore {
			break
		}
		if time.Since(brokenAt) > 30*time.Second {
			t.Fatalf("meshwarden_templates_load_errors_total stayed at %.0f for 30s after a broken template (err %v); log %s", errsAfter, err, r.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("broken template reported after %s", time.Since(brokenAt).Round(10*time.Millisecond))
	logText, _ := os.ReadFile(r.log)
	if !strings.Contains(string(logText), "templates not reloaded") || !strings.Contains(string(logText), "does not parse") {
		t.Errorf("log %s does not say the templates were not reloaded and why", r.log)
	}
	// An Event on the templates ConfigMap says why, for `kubectl describe configmap`.
	for {
		evs, err := env.Client().CoreV1().Events(mesh.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=TemplatesRejected"})
		if err == nil && len(evs.Items) > 0 {
			ev := evs.Items[0]
			if ev.InvolvedObject.Kind != "ConfigMap" || ev.InvolvedObject.Name != templatesCM || ev.Type != corev1.EventTypeWarning ||
				!strings.Contains(ev.Message, "does not parse") || !strings.Contains(ev.Message, "stays in force") {
				t.Errorf("TemplatesRejected event on %s/%s (%s): %q; want a Warning on ConfigMap %s saying why and that the previous set stays",
					ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Type, ev.Message, templatesCM)
			}
			break
		}
		if time.Since(brokenAt) > 30*time.Second {
			t.Fatalf("no TemplatesRejected event within 30s (err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Injection keeps working with the previous set, through the API server. The revision covers the
	// pod's own facts too (its workload name goes into the proxy's metadata), so the pod is the same
	// as the ones rev2 was read from.
	p, err := env.Client().CoreV1().Pods(ns).Create(ctx, newPod("probe").Pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("pod creation failed while the template directory is broken: %v", err)
	}
	if got := podRevision(t, p); !injected(p) || got != rev2 {
		t.Errorf("after a broken template: injected=%v revision %q, want the previous revision %q", injected(p), got, rev2)
	}
	if !r.running() {
		t.Fatalf("replica exited after a broken template; log %s", r.log)
	}
	// Fixing the directory is picked up as usual.
	cm.write(map[string]string{"sidecar.yaml": string(valid) + "\n{{- /* revision three */ -}}\n"})
	rev3 := injectedRevision(ctx, t, ns, rev2)
	if rev3 == rev1 {
		t.Errorf("revision three equals revision one (%s)", rev1)
	}
}

// injectedRevision waits until a dry-run pod in ns is injected with a template revision other
// than not, and returns it.
func injectedRevision(ctx context.Context, t *testing.T, ns, not string) string {
	t.Helper()
	var rev string
	err := waitInjectingIn(ctx, ns, 30*time.Second, func(p *corev1.Pod) bool {
		rev = podRevision(t, p)
		return rev != "" && rev != not
	})
	if err != nil {
		t.Fatalf("waiting for a template revision other than %q: %v (last %q)", not, err, rev)
	}
	return rev
}

func podRevision(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	var st struct {
		Revision string `json:"revision"`
	}
	if v := p.Annotations[statusAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &st); err != nil {
			t.Errorf("status annotation %q: %v", v, err)
		}
	}
	return st.Revision
}

// configMapDir writes files the way the kubelet updates a ConfigMap volume: a new timestamped
// directory, a ..data_tmp symlink renamed over ..data, and top-level symlinks into ..data.
type configMapDir struct {
	t   *testing.T
	dir string
	gen int
}

func (c *configMapDir) write(files map[string]string) {
	c.t.Helper()
	c.gen++
	gen := fmt.Sprintf("..%d_%d", time.Now().UnixNano(), c.gen)
	if err := os.MkdirAll(filepath.Join(c.dir, gen), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.dir, gen, name), []byte(data), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			c.t.Fatal(err)
		}
	}
}

// TestFaultAPIServerRestartRecovery restarts kube-apiserver while meshwarden runs and measures how
// long until (1) the API server injects again, (2) the guard's informers see a change made after
// the restart (a kubectl warning naming an object created after it) and (3) the reconciler records
// Events again. meshwarden must not crash-loop: at most one exit (leader election lost, by design
// of controller-runtime) and it must stay up afterwards.
func TestFaultAPIServerRestartRecovery(t *testing.T) {
	_, ns := setup(t, enabled)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	svc := func(name string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  selector: {app: %[1]s}\n  ports: [{port: 9080, name: http}]\n", name, ns)
	}
	dr := func(name string) string {
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: %s}\nspec: {host: %[1]s}\n", name, ns)
	}
	if _, stderr, err := env.KubectlInput(ctx, svc("before")+"---\n"+dr("before"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	time.Sleep(2 * time.Second)

	exits := 0
	start := time.Now()
	if err := env.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	apiBack := time.Since(start)
	// Injection through the API server.
	if err := waitInjectingIn(ctx, ns, 90*time.Second, nil); err != nil {
		if mesh.Running() {
			t.Fatal(err)
		}
		exits++
		t.Logf("meshwarden exited during the outage (see %s); restarting it as the kubelet would", mesh.LogFile())
		if err := mesh.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := waitInjectingIn(ctx, ns, 90*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	injecting := time.Since(start)

	// The guard's informers: a Service created after the restart must be known to /validate,
	// so deleting it warns about the DestinationRule that still references it.
	if _, stderr, err := env.KubectlInput(ctx, svc("after")+"---\n"+dr("after"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply after restart: %v\n%s", err, stderr)
	}
	var informers time.Duration
	for {
		_, stderr, err := env.Kubectl(ctx, "delete", "service", "after", "-n", ns)
		if err != nil {
			t.Fatalf("delete: %v\n%s", err, stderr)
		}
		if strings.Contains(stderr, "still referenced by DestinationRule after") {
			informers = time.Since(start)
			break
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("no warning on deleting a Service referenced by a DestinationRule created after the restart; stderr %q", stderr)
		}
		if _, stderr, err := env.KubectlInput(ctx, svc("after"), "apply", "-f", "-"); err != nil {
			t.Fatalf("re-apply: %v\n%s", err, stderr)
		}
		time.Sleep(time.Second)
	}
	// The reconciler's Events.
	waitEventWithin(ctx, t, ns, "after", "BrokenReference", 2*time.Minute)
	events := time.Since(start)

	// No crash loop: the process stays up for a while once recovered.
	stable := time.Now()
	for time.Since(stable) < 20*time.Second {
		if !mesh.Running() {
			exits++
			t.Errorf("meshwarden exited again after recovering (exit %d); log %s:\n%s", exits, mesh.LogFile(), faultTail(mesh.LogFile(), 10))
			if err := mesh.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("FIGURES API server restart: apiserver_ready=%s injecting=%s guard_informers=%s guard_events=%s meshwarden_exits=%d",
		apiBack.Round(100*time.Millisecond), injecting.Round(100*time.Millisecond),
		informers.Round(100*time.Millisecond), events.Round(100*time.Millisecond), exits)
}

// waitEventWithin is waitEvent with a longer deadline (a leader must be elected first).
func waitEventWithin(ctx context.Context, t *testing.T, ns, name, reason string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := env.Client().EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, e := range evs.Items {
				if e.Reason == reason && e.Regarding.Kind == "DestinationRule" && e.Regarding.Name == name {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event on DestinationRule %s/%s within %s (meshwarden log: %s)", reason, ns, name, timeout, mesh.LogFile())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
