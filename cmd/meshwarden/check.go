package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
)

func init() {
	register(command{name: "check", summary: "check Istio networking config offline (-f) or in the cluster", run: runCheck})
}

// Exit codes of check: like a compiler, 1 means the input has errors, 2 that it could not be read.
const (
	exitOK       = 0
	exitFindings = 1
	exitBadInput = 2
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func runCheck(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(s.err)
	var files fileList
	fs.Var(&files, "f", "manifest file, directory or - for stdin (repeatable); without -f the live cluster is read")
	output := fs.String("o", "text", "output format: text, json or yaml")
	namespace := fs.String("n", "default", "namespace of objects that do not set one")
	cfgPath := fs.String("config", "", "meshwarden config file (guard section: cluster domain, severities)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for the live cluster (default: $KUBECONFIG, ~/.kube/config)")
	withCluster := fs.Bool("cluster", false, "with -f, also read the live cluster and check the files as if applied on top of it")
	fs.Usage = func() {
		fmt.Fprintln(s.err, "Usage: meshwarden check [-f FILE|DIR|-]... [-cluster] [-o text|json|yaml]\n\nExit code 1 when any error is found, 2 on unreadable input.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.err, "check: unexpected argument %q; pass files with -f\n", fs.Arg(0))
		return exitBadInput
	}
	switch *output {
	case "text", "json", "yaml":
	default:
		fmt.Fprintf(s.err, "check: -o %q is not supported; use text, json or yaml\n", *output)
		return exitBadInput
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(s.err, "check: %v\n", err)
		return exitBadInput
	}
	l := load.New(*namespace)
	if len(files) == 0 || *withCluster {
		if err := loadCluster(ctx, l, *kubeconfig); err != nil {
			fmt.Fprintf(s.err, "check: reading the cluster: %v\n", err)
			return exitBadInput
		}
	}
	for _, f := range files {
		var err error
		if f == "-" {
			err = l.AddReader("<stdin>", s.in)
		} else {
			err = l.AddPath(f)
		}
		if err != nil {
			fmt.Fprintf(s.err, "check: %v\n", err)
			return exitBadInput
		}
	}
	findings := guard.Check(l.Snapshot(), guard.OptionsFrom(cfg.Guard))
	if err := writeFindings(s.out, *output, findings); err != nil {
		fmt.Fprintf(s.err, "check: %v\n", err)
		return exitBadInput
	}
	if guard.HasErrors(findings) {
		return exitFindings
	}
	return exitOK
}

func writeFindings(w io.Writer, format string, fs []guard.Finding) error {
	if fs == nil {
		fs = []guard.Finding{} // "[]", not "null", for tools reading the JSON
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(fs)
	case "yaml":
		b, err := yaml.Marshal(fs)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	for _, f := range fs {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "No findings.")
		return err
	}
	return nil
}

// loadCluster adds every object the checks read from the cluster in the kubeconfig. Istio kinds whose
// CRDs are not installed are skipped: there is then nothing of that kind to check.
func loadCluster(ctx context.Context, l *load.Loader, kubeconfig string) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := networking.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	return l.AddCluster(ctx, c)
}
