package certs

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/certs/internal/testapi"
)

// TestLeastRBAC runs a leader-elected replica as a user holding only testdata/rbac.yaml: it must
// create the Secret, inject caBundle, become ready and restore a clobbered caBundle.
func TestLeastRBAC(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "rbac")
	f.registerWebhooks(nil)
	user := "meshwarden-certs-" + f.name
	raw, err := os.ReadFile("testdata/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("NAMESPACE", f.name, "SECRET", secretName, "LEASE", "certs-test", "WEBHOOKS", f.name, "USER", user)
	rbac := f.client.RbacV1()
	for _, doc := range strings.Split(r.Replace(string(raw)), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Role":
			var o rbacv1.Role
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			if err == nil {
				_, err = rbac.Roles(f.name).Create(ctx, &o, metav1.CreateOptions{})
			}
		case "RoleBinding":
			var o rbacv1.RoleBinding
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			if err == nil {
				_, err = rbac.RoleBindings(f.name).Create(ctx, &o, metav1.CreateOptions{})
			}
		case "ClusterRole":
			var o rbacv1.ClusterRole
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			if err == nil {
				_, err = rbac.ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
			}
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			if err == nil {
				_, err = rbac.ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
			}
		default:
			t.Fatalf("unexpected kind %q in testdata/rbac.yaml", meta.Kind)
		}
		if err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}

	f.rc = testapi.User(t, user)
	rep := f.startReplica(f.config(nil), "a", true)
	eventually(t, 60*time.Second, "ready with least RBAC", func() error { return rep.p.Ready(nil) })
	if err := f.bundleMatchesSecret(ctx); err != nil {
		t.Fatal(err)
	}
	f.clobber(ctx, []byte("garbage"))
	eventually(t, 10*time.Second, "caBundle restored with least RBAC", func() error { return f.bundleMatchesSecret(ctx) })
	if f.logs.contains("forbidden") {
		t.Errorf("some request was forbidden; see logs")
	}
}
