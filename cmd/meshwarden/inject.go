package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/manifest"
	"github.com/meshwarden/meshwarden/templates"
)

func init() {
	register(command{name: "inject", summary: "Inject the sidecar into manifests offline, as the webhook would.", run: runInject})
}

func runInject(_ context.Context, args []string, s stdio) int {
	var files fileList
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	fs.SetOutput(s.err)
	fs.Var(&files, "f", "manifest file, directory or - for stdin (repeatable)")
	cfgPath := fs.String("config", "", "config file (MeshwardenConfig)")
	tmplDir := fs.String("templates-dir", "", "directory of extra or replacement templates")
	quiet := fs.Bool("q", false, "do not report skipped workloads on stderr")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "Usage: meshwarden inject -f FILE|DIR|- [-f ...] [--config FILE] [--templates-dir DIR]")
		fmt.Fprintln(s.err, "Prints the manifests with every workload injected. The namespace is taken as labelled")
		fmt.Fprintln(s.err, "meshwarden.io/inject=enabled; pod labels, annotations and the config still decide.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(files) == 0 || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(s.err, "meshwarden inject: %v\n", err)
		return 2
	}
	set := templates.Default()
	if *tmplDir != "" {
		if set, err = templates.LoadDir(*tmplDir); err != nil {
			fmt.Fprintf(s.err, "meshwarden inject: %v\n", err)
			return 2
		}
	}
	injector, err := inject.New(cfg, inject.StaticTemplates{Set: set})
	if err != nil {
		fmt.Fprintf(s.err, "meshwarden inject: %v\n", err)
		return 2
	}
	docs, err := manifest.Read(files, s.in)
	if err != nil {
		fmt.Fprintf(s.err, "meshwarden inject: %v\n", err)
		return 2
	}
	return injectDocs(injector, docs, s.out, s.err, *quiet)
}

// injectDocs injects every document and prints them all, or prints every denial and nothing else:
// half-injected output piped into kubectl would be worse than none.
func injectDocs(in *inject.Injector, docs []manifest.Doc, out, errOut io.Writer, quiet bool) int {
	var printed []string
	denied := false
	for _, d := range docs {
		res, err := manifest.Inject(in, d)
		if err != nil {
			fmt.Fprintf(errOut, "%s: %v\n", d.Source, err)
			return 2
		}
		for _, msg := range res.Denied {
			denied = true
			fmt.Fprintf(errOut, "%s: %s: denied: %s\n", d.Source, res.Object, msg)
		}
		if !quiet {
			for _, sk := range res.Skipped {
				fmt.Fprintf(errOut, "%s: %s: not injected: %s\n", d.Source, sk.Object, sk.Reason.Sentence())
			}
		}
		printed = append(printed, res.Output)
	}
	if denied {
		return 1
	}
	for i, p := range printed {
		if i > 0 {
			fmt.Fprintln(out, "---")
		}
		fmt.Fprint(out, p)
	}
	return 0
}
