package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/guard"
)

// FuzzCheckCommand feeds `meshwarden check -f - -o FORMAT` arbitrary YAML on stdin, seeded with
// Istio's analyzer inputs (../shared/corpus) and the golden inject inputs. Whatever the input: no
// panic; exit 0 or 1 with findings in the requested format on stdout (1 exactly when one is an
// error) and nothing on stderr, or exit 2 with nothing on stdout and one line on stderr.
func FuzzCheckCommand(f *testing.F) {
	for _, pattern := range []string{
		filepath.Join("..", "..", "..", "shared", "corpus", "analyze", "*.yaml"),
		filepath.Join("..", "..", "..", "shared", "corpus", "bookinfo", "*.yaml"),
		filepath.Join("testdata", "inject", "*.yaml"),
	} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(string(data), uint8(0))
			}
		}
	}
	f.Add("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {hosts: [a], gateways: [nope]}\n", uint8(1))
	f.Add("---\n---\n", uint8(2))
	f.Add("kind: [", uint8(0))
	formats := []string{"text", "json", "yaml"}
	f.Fuzz(func(t *testing.T, in string, format uint8) {
		o := formats[int(format)%len(formats)]
		var out, errb bytes.Buffer
		code := runMain(context.Background(), []string{"check", "-f", "-", "-o", o}, stdio{in: strings.NewReader(in), out: &out, err: &errb})
		switch code {
		case exitBadInput:
			if out.Len() != 0 {
				t.Fatalf("exit 2 with output: %q", out.String())
			}
			msg := strings.TrimSuffix(errb.String(), "\n")
			if !strings.HasPrefix(msg, "check: ") || strings.Contains(msg, "\n") {
				t.Fatalf("exit 2 without a one-line \"check: \" message: %q", errb.String())
			}
			return
		case exitOK, exitFindings:
		default:
			t.Fatalf("exit code %d", code)
		}
		if errb.Len() != 0 {
			t.Fatalf("exit %d with stderr %q", code, errb.String())
		}
		var findings []guard.Finding
		switch o {
		case "json":
			if err := json.Unmarshal(out.Bytes(), &findings); err != nil {
				t.Fatalf("-o json is not a JSON list of findings: %v\n%s", err, out.String())
			}
		case "yaml":
			if err := yaml.Unmarshal(out.Bytes(), &findings); err != nil {
				t.Fatalf("-o yaml is not a YAML list of findings: %v\n%s", err, out.String())
			}
		default:
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if code == exitFindings && (len(lines) == 0 || lines[0] == "No findings.") {
				t.Fatalf("exit 1 without findings: %q", out.String())
			}
			return
		}
		if guard.HasErrors(findings) != (code == exitFindings) {
			t.Fatalf("exit %d, but findings %v", code, findings)
		}
	})
}
