package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const brokenVS = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: store-gateway, namespace: store}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress, namespace: istio-system}
spec:
  template:
    metadata: {labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: sample-app, namespace: store}
spec:
  hosts: ["*"]
  gateways: [store/store-gatewy]
`

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.yaml", brokenVS)
	bad := write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n")
	tests := map[string]struct {
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		"text": {
			args:     []string{"-f", broken},
			wantCode: 1,
			wantOut:  `Error [MW0101] VirtualService store/sample-app spec.gateways[0]: Gateway "store/store-gatewy" not found; did you mean "store-gateway"?` + "\n",
		},
		"stdin, clean": {
			args:    []string{"-f", "-"},
			stdin:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			wantOut: "No findings.\n",
		},
		"bad YAML names file and document": {
			args:     []string{"-f", bad},
			wantCode: 2,
			wantErr:  bad + ": document 2: ",
		},
		"unknown output": {
			args:     []string{"-f", broken, "-o", "xml"},
			wantCode: 2,
			wantErr:  `-o "xml" is not supported`,
		},
		"missing file": {
			args:     []string{"-f", filepath.Join(dir, "nope.yaml")},
			wantCode: 2,
			wantErr:  "nope.yaml",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(context.Background(), append([]string{"check"}, tc.args...), stdio{in: strings.NewReader(tc.stdin), out: &out, err: &errb})
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tc.wantCode, errb.String())
			}
			if tc.wantOut != "" {
				if diff := cmp.Diff(tc.wantOut, out.String()); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errb.String(), tc.wantErr)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"check", "-f", "-", "-o", "json"}, stdio{in: strings.NewReader(brokenVS), out: &out, err: &errb})
	if code != 1 {
		t.Fatalf("exit code = %d, want 1 (stderr %q)", code, errb.String())
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, out.String())
	}
	want := []map[string]any{{
		"code": "MW0101", "severity": "error", "field": "spec.gateways[0]",
		"resource": map[string]any{"kind": "VirtualService", "namespace": "store", "name": "sample-app"},
		"message":  `Gateway "store/store-gatewy" not found; did you mean "store-gateway"?`,
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("json (-want +got):\n%s", diff)
	}
}

// TestCheckBookinfo: the Bookinfo base set has no errors; subsets without a Deployment are warnings.
func TestCheckBookinfo(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "bookinfo")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("corpus not present at %s: %v", dir, err)
	}
	args := []string{"check", "-o", "json"}
	for _, f := range []string{"bookinfo.yaml", "bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-all-v1.yaml"} {
		args = append(args, "-f", filepath.Join(dir, f))
	}
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	if code != 0 {
		t.Fatalf("exit code = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	var findings []struct {
		Code, Severity, Field string
		Resource              struct{ Kind, Namespace, Name string }
	}
	if err := json.Unmarshal(out.Bytes(), &findings); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.Code+" "+f.Severity+" "+f.Resource.Kind+" "+f.Resource.Name+" "+f.Field)
	}
	want := []string{
		// Subsets whose Deployments are upstream files not in the corpus.
		"MW0501 warning DestinationRule details spec.subsets[1].labels",
		"MW0501 warning DestinationRule ratings spec.subsets[1].labels",
		"MW0501 warning DestinationRule ratings spec.subsets[2].labels",
		"MW0501 warning DestinationRule ratings spec.subsets[3].labels",
		// The ingress gateway pods come from the Istio install, not from these files.
		"MW0601 warning Gateway bookinfo-gateway spec.selector",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}
