package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type podBuilder struct{ *corev1.Pod }

// newPod is a minimal pod; kwok never pulls the image.
func newPod(name string) podBuilder {
	return podBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
		}}},
	}}
}

func (b podBuilder) withLabel(k, v string) podBuilder { b.Labels[k] = v; return b }

func (b podBuilder) withAnnotation(k, v string) podBuilder {
	if b.Annotations == nil {
		b.Annotations = map[string]string{}
	}
	b.Annotations[k] = v
	return b
}

func (b podBuilder) template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: b.ObjectMeta, Spec: b.Spec}
}

func selector(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
}

func deployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: selector(name), Template: newPod(name).template()},
	}
}

func statefulSet(name string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: name,
			Selector: selector(name), Template: newPod(name).template()},
	}
}

func job(name string) *batchv1.Job {
	tmpl := newPod(name).template()
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: batchv1.JobSpec{Template: tmpl}}
}

// waitPods waits until at least n pods labelled app=name exist in ns and returns them.
func waitPods(ctx context.Context, t *testing.T, ns, name string, n int) []corev1.Pod {
	t.Helper()
	var last []corev1.Pod
	for ctx.Err() == nil {
		list, err := env.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil && len(list.Items) >= n {
			return list.Items
		}
		if err == nil {
			last = list.Items
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/%s: want %d pods, have %d; events:\n%s", ns, name, n, len(last), events(ns))
	return nil
}

// events summarises a namespace's events, which say why a controller could not create its pods.
func events(ns string) string {
	list, err := env.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var s string
	for _, e := range list.Items {
		s += fmt.Sprintf("  %s %s: %s\n", e.InvolvedObject.Name, e.Reason, e.Message)
	}
	return s
}
