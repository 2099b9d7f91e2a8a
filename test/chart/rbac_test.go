package chart

import (
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

func writes(r rbacv1.PolicyRule) bool {
	return slices.ContainsFunc(r.Verbs, func(v string) bool { return slices.Contains(writeVerbs, v) })
}

// TestRBAC: least privilege. No wildcards; cluster-wide writes only to Events, Istio status and
// meshwarden's own webhook configurations (by name); Secrets only through the Role in the release
// namespace; bindings grant to meshwarden's ServiceAccount.
func TestRBAC(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		cr := find[*rbacv1.ClusterRole](t, objs, releaseName)
		role := find[*rbacv1.Role](t, objs, releaseName)
		for _, rules := range [][]rbacv1.PolicyRule{cr.Rules, role.Rules} {
			for _, r := range rules {
				for _, s := range slices.Concat(r.Verbs, r.APIGroups, r.Resources, r.ResourceNames) {
					if strings.Contains(s, "*") {
						t.Errorf("wildcard %q in rule %+v", s, r)
					}
				}
			}
		}
		webhookNames := []string{
			find[*admissionv1.MutatingWebhookConfiguration](t, objs, "").Name,
			find[*admissionv1.ValidatingWebhookConfiguration](t, objs, "").Name,
		}
		var patchesWebhooks bool
		for _, r := range cr.Rules {
			if slices.Contains(r.Resources, "secrets") {
				t.Errorf("ClusterRole grants Secrets cluster-wide: %+v", r)
			}
			if !writes(r) {
				continue
			}
			switch {
			case slices.Equal(r.Resources, []string{"events"}):
			case !slices.ContainsFunc(r.Resources, func(s string) bool { return !strings.HasSuffix(s, "/status") }) &&
				slices.Equal(r.APIGroups, []string{"networking.istio.io"}):
			case slices.Equal(r.APIGroups, []string{"admissionregistration.k8s.io"}):
				patchesWebhooks = true
				for _, n := range r.ResourceNames {
					if !slices.Contains(webhookNames, n) {
						t.Errorf("ClusterRole may write webhook configuration %q, not meshwarden's", n)
					}
				}
				if len(r.ResourceNames) == 0 || slices.Contains(r.Verbs, "create") || slices.Contains(r.Verbs, "delete") {
					t.Errorf("webhook configuration rule not narrowed to meshwarden's own by name: %+v", r)
				}
			default:
				t.Errorf("ClusterRole writes more than events, Istio status and its webhooks: %+v", r)
			}
		}
		if !patchesWebhooks {
			t.Error("ClusterRole cannot patch meshwarden's webhook configurations (caBundle)")
		}
		var secrets, leases, configMaps bool
		for _, r := range role.Rules {
			secrets = secrets || slices.Contains(r.Resources, "secrets")
			leases = leases || slices.Contains(r.Resources, "leases")
			configMaps = configMaps || slices.Contains(r.Resources, "configmaps")
		}
		wantSecrets := loadConfig(t, objs).Certs.Mode == "self"
		if secrets != wantSecrets || !leases || !configMaps {
			t.Errorf("Role: secrets %v (want %v: only self mode writes one), leases %v, configmaps %v", secrets, wantSecrets, leases, configMaps)
		}
		for _, r := range role.Rules {
			if len(r.ResourceNames) == 0 && !slices.Equal(r.Verbs, []string{"create"}) {
				t.Errorf("Role rule not narrowed by name (only create cannot be): %+v", r)
			}
		}
		crb := find[*rbacv1.ClusterRoleBinding](t, objs, releaseName)
		rb := find[*rbacv1.RoleBinding](t, objs, releaseName)
		sa := deployment(t, objs).Spec.Template.Spec.ServiceAccountName
		for _, b := range []struct {
			ref      rbacv1.RoleRef
			subjects []rbacv1.Subject
			wantRole string
		}{{crb.RoleRef, crb.Subjects, "ClusterRole"}, {rb.RoleRef, rb.Subjects, "Role"}} {
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: releaseNS}}
			if b.ref.Kind != b.wantRole || b.ref.Name != releaseName || !slices.Equal(b.subjects, want) {
				t.Errorf("binding %+v to %+v, want %s %s to %+v", b.ref, b.subjects, b.wantRole, releaseName, want)
			}
		}
	})
}
