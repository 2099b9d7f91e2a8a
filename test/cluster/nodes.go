package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kwokNodeAnnotation marks the nodes kwok manages (and only those).
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

func fakeNode(name string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type": "kwok", "kubernetes.io/hostname": name,
				"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
}

// createNodes registers n fake nodes and waits until kwok reports them Ready.
func (c *Cluster) createNodes(ctx context.Context, n int, kwok *process) error {
	nodes := c.client.CoreV1().Nodes()
	for i := range n {
		if _, err := nodes.Create(ctx, fakeNode(fmt.Sprintf("kwok-node-%d", i)), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create fake node: %w", err)
		}
	}
	return poll(ctx, time.Minute, kwok, func(ctx context.Context) error {
		list, err := nodes.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, node := range list.Items {
			if !nodeReady(&node) {
				return fmt.Errorf("node %s is not Ready yet", node.Name)
			}
		}
		return nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitServiceAccount waits for the "default" ServiceAccount in ns. Pods cannot be created in a
// namespace before it exists (the ServiceAccount admission plugin rejects them).
func (c *Cluster) waitServiceAccount(ctx context.Context, ns string, timeout time.Duration) error {
	return poll(ctx, timeout, nil, func(ctx context.Context) error {
		_, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// CreateNamespace creates a namespace with labels and waits until pods can be created in it.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return c.waitServiceAccount(ctx, name, time.Minute)
}
