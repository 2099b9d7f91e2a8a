package cluster

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Names of the webhook configurations and webhooks RegisterWebhooks creates.
const (
	WebhookConfigName   = "meshwarden"
	InjectWebhookName   = "inject.meshwarden.io"
	GuardWebhookName    = "guard.meshwarden.io"
	partOfLabel         = "app.kubernetes.io/part-of"
	namespaceNameLabel  = "kubernetes.io/metadata.name"
	namespaceInjectKey  = "meshwarden.io/inject"
	namespaceGuardKey   = "meshwarden.io/config-guard"
	podInjectLabel      = "sidecar.meshwarden.io/inject"
	defaultOwnNamespace = "meshwarden"
)

// WebhookOptions describes the webhook configurations to register.
type WebhookOptions struct {
	// BaseURL is where meshwarden serves, e.g. https://127.0.0.1:9443 (paths are appended).
	BaseURL string
	// CABundle is the PEM CA that signed meshwarden's serving certificate.
	CABundle []byte
	// InjectFailurePolicy defaults to Fail: a pod in an opted-in namespace must not start without
	// its sidecar unnoticed.
	InjectFailurePolicy admissionv1.FailurePolicyType
	// GuardFailurePolicy defaults to Ignore: a down guard must not block config changes.
	GuardFailurePolicy admissionv1.FailurePolicyType
	// OwnNamespace is meshwarden's namespace, never injected; default "meshwarden".
	OwnNamespace string
}

// systemNamespaces are never sent to meshwarden, whatever their labels say.
func systemNamespaces(own string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{
		Key: namespaceNameLabel, Operator: metav1.LabelSelectorOpNotIn,
		Values: []string{"kube-system", "kube-public", "kube-node-lease", own},
	}
}

// MutatingWebhookConfiguration builds the injector's configuration: pod CREATE in namespaces
// labelled meshwarden.io/inject=enabled, minus system namespaces and opted-out pods.
func MutatingWebhookConfiguration(o WebhookOptions) *admissionv1.MutatingWebhookConfiguration {
	o = o.withDefaults()
	return &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookConfigName, Labels: map[string]string{partOfLabel: "meshwarden"}},
		Webhooks: []admissionv1.MutatingWebhook{{
			Name:                    InjectWebhookName,
			ClientConfig:            admissionv1.WebhookClientConfig{URL: ptr.To(o.BaseURL + "/inject"), CABundle: o.CABundle},
			Rules:                   []admissionv1.RuleWithOperations{rule([]admissionv1.OperationType{admissionv1.Create}, "", []string{"v1"}, "pods")},
			FailurePolicy:           ptr.To(o.InjectFailurePolicy),
			SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
			ReinvocationPolicy:      ptr.To(admissionv1.IfNeededReinvocationPolicy),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: namespaceInjectKey, Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}},
				systemNamespaces(o.OwnNamespace),
			}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: podInjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}},
			}},
		}},
	}
}

// ValidatingWebhookConfiguration builds the config guard's configuration: Istio networking kinds
// and workloads (their pod templates) in every namespace whose guard is not switched off.
func ValidatingWebhookConfiguration(o WebhookOptions) *admissionv1.ValidatingWebhookConfiguration {
	o = o.withDefaults()
	cu := []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}
	cud := []admissionv1.OperationType{admissionv1.Create, admissionv1.Update, admissionv1.Delete}
	istio := []string{"v1", "v1beta1", "v1alpha3"}
	return &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookConfigName, Labels: map[string]string{partOfLabel: "meshwarden"}},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:         GuardWebhookName,
			ClientConfig: admissionv1.WebhookClientConfig{URL: ptr.To(o.BaseURL + "/validate"), CABundle: o.CABundle},
			Rules: []admissionv1.RuleWithOperations{
				// DELETE of a Gateway or Service others still reference gets a warning.
				rule(cud, "networking.istio.io", istio, "gateways"),
				rule(cu, "networking.istio.io", istio, "virtualservices", "destinationrules", "serviceentries"),
				rule([]admissionv1.OperationType{admissionv1.Delete}, "", []string{"v1"}, "services"),
				rule(cu, "apps", []string{"v1"}, "deployments", "statefulsets", "daemonsets", "replicasets"),
				rule(cu, "batch", []string{"v1"}, "jobs", "cronjobs"),
			},
			FailurePolicy:           ptr.To(o.GuardFailurePolicy),
			SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: namespaceGuardKey, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"off"}},
				systemNamespaces(o.OwnNamespace),
			}},
		}},
	}
}

func rule(ops []admissionv1.OperationType, group string, versions []string, resources ...string) admissionv1.RuleWithOperations {
	return admissionv1.RuleWithOperations{Operations: ops, Rule: admissionv1.Rule{
		APIGroups: []string{group}, APIVersions: versions, Resources: resources, Scope: ptr.To(admissionv1.NamespacedScope),
	}}
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	if o.InjectFailurePolicy == "" {
		o.InjectFailurePolicy = admissionv1.Fail
	}
	if o.GuardFailurePolicy == "" {
		o.GuardFailurePolicy = admissionv1.Ignore
	}
	if o.OwnNamespace == "" {
		o.OwnNamespace = defaultOwnNamespace
	}
	return o
}

// RegisterWebhooks creates or replaces both webhook configurations.
func (c *Cluster) RegisterWebhooks(ctx context.Context, o WebhookOptions) error {
	api := c.client.AdmissionregistrationV1()
	m := MutatingWebhookConfiguration(o)
	if old, err := api.MutatingWebhookConfigurations().Get(ctx, m.Name, metav1.GetOptions{}); err == nil {
		m.ResourceVersion = old.ResourceVersion
		_, err = api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update MutatingWebhookConfiguration: %w", err)
		}
	} else if apierrors.IsNotFound(err) {
		if _, err := api.MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create MutatingWebhookConfiguration: %w", err)
		}
	} else {
		return err
	}
	v := ValidatingWebhookConfiguration(o)
	if old, err := api.ValidatingWebhookConfigurations().Get(ctx, v.Name, metav1.GetOptions{}); err == nil {
		v.ResourceVersion = old.ResourceVersion
		_, err = api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update ValidatingWebhookConfiguration: %w", err)
		}
		return nil
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create ValidatingWebhookConfiguration: %w", err)
	}
	return nil
}
