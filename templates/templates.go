// Package templates holds meshwarden's injection templates: the defaults embedded in the binary, the
// loading of user templates from a directory, and a watcher that swaps in a new set only when every
// template in it parses, so a broken ConfigMap never takes injection down.
//
// A template is Go text/template with the sprig functions plus include, and renders a partial pod in
// YAML. The file name without its extension is the template's name.
package templates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
)

//go:embed *.yaml
var defaults embed.FS

// Template is one parsed template.
type Template struct {
	Name string
	t    *template.Template
	// UsesPod is true when the template reads .Pod (or passes the whole data on), so its output can
	// differ between pods with the same settings and must not be cached.
	UsesPod bool
}

// Set is an immutable set of templates with a revision that changes whenever any source changes.
type Set struct {
	byName   map[string]*Template
	Revision string
}

// Default returns the embedded templates. They are tested at build time, so a failure here is a bug.
func Default() *Set {
	s, err := load(map[string]string{}, nil)
	if err != nil {
		panic(fmt.Sprintf("embedded templates: %v", err))
	}
	return s
}

// LoadDir returns the embedded templates with those in dir added or replacing them by name. Files
// ending in .yaml, .yml or .tmpl are read; hidden entries (ConfigMap mounts keep ..data there) are not.
func LoadDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading templates directory: %w", err)
	}
	user := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".tmpl") {
			continue
		}
		// Stat follows the symlinks a ConfigMap mount is made of.
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading template %s: %w", name, err)
		}
		user[strings.TrimSuffix(name, ext)] = string(data)
	}
	return load(user, nil)
}

func load(user map[string]string, _ fs.FS) (*Set, error) {
	sources := map[string]string{}
	files, _ := fs.Glob(defaults, "*.yaml")
	for _, f := range files {
		data, _ := defaults.ReadFile(f)
		sources[strings.TrimSuffix(f, ".yaml")] = string(data)
	}
	for n, src := range user {
		sources[n] = src
	}
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	// A source named with a leading underscore is a library, as Helm's _helpers.tpl: its defines are
	// parsed into every template (so both built-in profiles share one capture init container), and
	// it cannot be selected by name itself.
	var libs []string
	for _, n := range names {
		if strings.HasPrefix(n, "_") {
			libs = append(libs, sources[n])
		}
	}
	h := sha256.New()
	s := &Set{byName: map[string]*Template{}}
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, sources[n])
		if strings.HasPrefix(n, "_") {
			if _, err := Parse(n, sources[n]); err != nil {
				return nil, err
			}
			continue
		}
		t, err := Parse(n, sources[n], libs...)
		if err != nil {
			return nil, err
		}
		s.byName[n] = t
	}
	s.Revision = hex.EncodeToString(h.Sum(nil))[:12]
	return s, nil
}

// Parse parses one template, with the defines of the library sources libs available to it. Errors
// carry the template name and line, as text/template reports them.
func Parse(name, src string, libs ...string) (*Template, error) {
	t := template.New(name).Option("missingkey=error")
	funcs := sprig.TxtFuncMap()
	// Functions that reach outside the process have no place in a template run on every pod creation.
	for _, f := range []string{"env", "expandenv", "getHostByName"} {
		delete(funcs, f)
	}
	funcs["include"] = func(name string, data any) (string, error) {
		var b bytes.Buffer
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	t.Funcs(funcs)
	for _, lib := range libs {
		if _, err := t.New("").Parse(lib); err != nil {
			return nil, fmt.Errorf("template library does not parse: %w", err)
		}
	}
	if _, err := t.Parse(src); err != nil {
		return nil, fmt.Errorf("template %q does not parse: %w", name, err)
	}
	usesPod := false
	for _, tt := range t.Templates() {
		if tt.Tree != nil && readsPod(tt.Tree.Root) {
			usesPod = true
		}
	}
	return &Template{Name: name, t: t, UsesPod: usesPod}, nil
}

// Execute renders the template with data.
func (t *Template) Execute(data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %q: %w", t.Name, err)
	}
	return b.Bytes(), nil
}

// Get returns the named template.
func (s *Set) Get(name string) (*Template, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Names lists the templates in the set, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// readsPod reports whether a parse tree reads .Pod or hands the whole data (".") to a function or
// template, after which anything may be read.
func readsPod(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if readsPod(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return readsPod(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if readsPod(c) {
				return true
			}
		}
	case *parse.CommandNode:
		fn := ""
		if id, ok := n.Args[0].(*parse.IdentifierNode); ok {
			fn = id.Ident
		}
		for _, a := range n.Args {
			// include hands the data to a named template of this set, which is walked on its own.
			if wholeData(a) && fn != "include" {
				return true
			}
			if readsPod(a) {
				return true
			}
		}
	case *parse.FieldNode:
		return len(n.Ident) > 0 && n.Ident[0] == "Pod"
	case *parse.VariableNode:
		return len(n.Ident) > 1 && n.Ident[1] == "Pod"
	case *parse.ChainNode:
		return readsPod(n.Node)
	case *parse.IfNode:
		return readsPod(n.Pipe) || readsPod(n.List) || readsPod(n.ElseList)
	case *parse.RangeNode:
		return readsPod(n.Pipe) || readsPod(n.List) || readsPod(n.ElseList)
	case *parse.WithNode:
		return readsPod(n.Pipe) || readsPod(n.List) || readsPod(n.ElseList)
	case *parse.TemplateNode:
		// {{ template "x" . }}: "x" is walked on its own; anything but plain dot is read here.
		if n.Pipe != nil && !(len(n.Pipe.Cmds) == 1 && len(n.Pipe.Cmds[0].Args) == 1 && wholeData(n.Pipe.Cmds[0].Args[0])) {
			return readsPod(n.Pipe)
		}
	}
	return false
}

// wholeData is true for "." and "$": the entire template data.
func wholeData(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.DotNode:
		return true
	case *parse.VariableNode:
		return len(n.Ident) == 1 && n.Ident[0] == "$"
	}
	return false
}
