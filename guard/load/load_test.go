package load

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshwarden/meshwarden/guard"
)

func TestLoad(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []string // "Kind ns/name" of what the snapshot holds
		ignored int
		wantErr string
	}{
		"multi-document with default namespace and an ignored kind": {
			in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" +
				"---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: v, namespace: x}\nspec: {hosts: [a]}\n",
			want:    []string{"Service dflt/a", "VirtualService x/v"},
			ignored: 1,
		},
		"v1 List": {
			in:   `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule","metadata":{"name":"d"},"spec":{"host":"a"}}]}`,
			want: []string{"DestinationRule dflt/d"},
		},
		"pod templates stand in for pods": {
			in: "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {metadata: {labels: {app: c}}}}}}\n---\n" +
				"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s, namespace: yy}\nspec: {template: {metadata: {labels: {app: s}}}}\n",
			want: []string{"CronJob dflt/c app=c", "StatefulSet yy/s app=s"},
		},
		"later document replaces an earlier one": {
			in:   "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 2}]}\n",
			want: []string{"Service dflt/a port 2"},
		},
		"bad YAML names the document":     {in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [x\n", wantErr: "in: document 2: not valid YAML"},
		"no kind":                         {in: "apiVersion: v1\nmetadata: {name: a}\n", wantErr: "in: document 1: kind is missing"},
		"a scalar is not an object":       {in: "just text\n", wantErr: "in: document 1: not a Kubernetes object"},
		"wrong type in an Istio spec":     {in: "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {servers: 3}\n", wantErr: "in: document 1: Gateway:"},
		"List item error names its index": {in: `{"apiVersion":"v1","kind":"List","items":[{"kind":""}]}`, wantErr: "in: document 1: items[0]: kind is missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := New("dflt")
			err := l.AddReader("in", strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, describe(l.Snapshot())); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
			if l.Ignored != tc.ignored {
				t.Errorf("ignored = %d, want %d", l.Ignored, tc.ignored)
			}
		})
	}
}

func describe(s *guard.Snapshot) []string {
	var out []string
	for _, o := range s.Services {
		d := "Service " + o.Namespace + "/" + o.Name
		for _, p := range o.Spec.Ports {
			d += " port " + string(rune('0'+p.Port))
		}
		out = append(out, d)
	}
	for _, o := range s.DestinationRules {
		out = append(out, "DestinationRule "+o.Namespace+"/"+o.Name)
	}
	for _, o := range s.VirtualServices {
		out = append(out, "VirtualService "+o.Namespace+"/"+o.Name)
	}
	for _, w := range s.Workloads {
		out = append(out, w.Kind+" "+w.Namespace+"/"+w.Name+" app="+w.Labels["app"])
	}
	return out
}

// FuzzLoadAndCheck: any input either fails to load with an error or loads and checks without a panic.
func FuzzLoadAndCheck(f *testing.F) {
	f.Add("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {gateways: [a/b, ./c, d.e.svc.cluster.local, mesh], http: [{route: [{destination: {host: '*.x', subset: s, port: {number: 1}}}]}]}\n")
	f.Add("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {selector: {a: b}, servers: [{port: {number: 80}, hosts: ['./*', '*/x']}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\n")
	f.Add("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: '*', exportTo: ['~'], subsets: [{name: a, labels: {x: ''}}]}\n")
	f.Fuzz(func(t *testing.T, in string) {
		l := New("default")
		if err := l.AddReader("fuzz", strings.NewReader(in)); err != nil {
			return
		}
		_ = guard.Check(l.Snapshot(), guard.DefaultOptions())
	})
}
