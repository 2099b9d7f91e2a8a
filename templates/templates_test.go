package templates

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultTemplatesParse(t *testing.T) {
	s := Default()
	if got := strings.Join(s.Names(), ","); got != "istio,sidecar" {
		t.Fatalf("built-in templates %s, want istio,sidecar (libraries such as _capture are not templates)", got)
	}
	for _, name := range s.Names() {
		tmpl, _ := s.Get(name)
		if tmpl.UsesPod {
			t.Fatalf("built-in template %s reads .Pod, so every injection would render from scratch", name)
		}
	}
}

func TestLoadDir(t *testing.T) {
	cases := map[string]struct {
		files   map[string]string
		wantErr string // substring; empty means success
		names   []string
		usesPod map[string]bool
	}{
		"adds a template": {
			files: map[string]string{"extra.yaml": "metadata:\n  labels: {a: b}\n"},
			names: []string{"extra", "istio", "sidecar"},
		},
		"replaces the default by name": {
			files: map[string]string{"sidecar.yaml": "spec: {}\n"},
			names: []string{"istio", "sidecar"},
		},
		"a library's defines reach every template": {
			files: map[string]string{"_mine.yaml": `{{ define "team-label" }}team: payments{{ end }}`,
				"extra.yaml": "metadata:\n  labels: {{ include \"team-label\" . | nindent 4 }}\n"},
			names: []string{"extra", "istio", "sidecar"},
		},
		"a broken library is refused": {
			files:   map[string]string{"_mine.yaml": `{{ define "x" }}`},
			wantErr: `template "_mine" does not parse`,
		},
		"reading the pod is detected": {
			files:   map[string]string{"podaware.tmpl": "metadata:\n  labels: {app: {{ toJson .Pod.Name }}}\n", "passes-all.yaml": "{{ toJson . }}"},
			names:   []string{"istio", "passes-all", "podaware", "sidecar"},
			usesPod: map[string]bool{"podaware": true, "passes-all": true, "sidecar": false},
		},
		"ignores hidden entries and other files": {
			files: map[string]string{"..data": "x", "README.md": "{{ broken", ".hidden.yaml": "{{ broken"},
			names: []string{"istio", "sidecar"},
		},
		"parse error names the template and line": {
			files:   map[string]string{"bad.yaml": "metadata:\n  labels:\n    a: {{ .Values.X \n"},
			wantErr: `template "bad" does not parse: template: bad:4: unclosed action started at bad:3`,
		},
		"unknown function refused": {
			files:   map[string]string{"envy.yaml": "{{ env \"HOME\" }}"},
			wantErr: `function "env" not defined`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := LoadDir(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.Names(), ","); got != strings.Join(tc.names, ",") {
				t.Fatalf("names %s, want %s", got, strings.Join(tc.names, ","))
			}
			for n, want := range tc.usesPod {
				if tmpl, _ := s.Get(n); tmpl.UsesPod != want {
					t.Errorf("%s UsesPod=%v, want %v", n, tmpl.UsesPod, want)
				}
			}
			if s.Revision == Default().Revision && len(tc.files) > 0 && tc.names[0] != "istio" {
				t.Error("revision did not change with the templates")
			}
		})
	}
}

// TestWatcherKeepsPreviousSetOnError: a broken template is refused with its line, the set in force
// stays, and the next good change is picked up.
func TestWatcherKeepsPreviousSetOnError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		// Write then rename, as a ConfigMap update swaps files atomically.
		tmp := filepath.Join(dir, ".tmp-"+name)
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("extra.yaml", "metadata:\n  labels: {v: \"1\"}\n")
	set, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(set)
	errs := make(chan error, 10)
	loads := make(chan *Set, 10)
	w := &Watcher{Dir: dir, Store: store, Debounce: 20 * time.Millisecond,
		OnError: func(err error) { errs <- err }, OnLoad: func(s *Set) { loads <- s }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Start(ctx) }()
	time.Sleep(100 * time.Millisecond) // let the watch start

	write("extra.yaml", "metadata:\n  labels: {v: {{ nosuchfunc }}}\n")
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), `"extra"`) || !strings.Contains(err.Error(), ":2:") {
			t.Fatalf("error %v should name the template and line 2", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broken template not reported")
	}
	if store.Current() != set {
		t.Fatal("the set in force changed after a broken update")
	}

	write("extra.yaml", "metadata:\n  labels: {v: \"2\"}\n")
	select {
	case s := <-loads:
		if store.Current() != s || s.Revision == set.Revision {
			t.Fatal("good update not in force")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("good update not picked up")
	}
}
