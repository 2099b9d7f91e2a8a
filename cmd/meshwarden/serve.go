package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	networkingv1beta1 "istio.io/client-go/pkg/apis/networking/v1beta1"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard/reconciler"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/templates"
	"github.com/meshwarden/meshwarden/webhook"
)

func init() {
	register(command{name: "serve", summary: "Run the admission webhooks (inject, validate) and the guard reconciler.", run: runServe})
}

type serveFlags struct {
	config, kubeconfig, namespace string
	webhookHost                   string
	webhookPort                   int
	certDir, templatesDir         string
	metricsAddr, healthAddr       string
	logLevel, logFormat           string
	leaderElect                   string
}

func runServe(ctx context.Context, args []string, s stdio) int {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(s.err)
	fs.StringVar(&f.config, "config", "", "config file (MeshwardenConfig); flags override it")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, else $KUBECONFIG)")
	fs.StringVar(&f.namespace, "namespace", "", "meshwarden's own namespace (default: config, $POD_NAMESPACE, else meshwarden)")
	fs.StringVar(&f.webhookHost, "webhook-host", "", "address the webhook server listens on (default: all)")
	fs.IntVar(&f.webhookPort, "webhook-port", 9443, "webhook server port")
	fs.StringVar(&f.certDir, "cert-dir", "", "directory with tls.crt and tls.key (default: config certs.dir)")
	fs.StringVar(&f.templatesDir, "templates-dir", "", "directory of extra or replacement templates, watched (default: config injection.templatesDir)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":8080", "Prometheus /metrics address; 0 disables")
	fs.StringVar(&f.healthAddr, "health-addr", ":8081", "/healthz and /readyz address")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&f.leaderElect, "leader-elect", "", "override config leaderElection.enabled: true or false")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serve(ctx, f); err != nil {
		fmt.Fprintf(s.err, "meshwarden serve: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, f serveFlags) error {
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)
	log := logger.WithName("serve")
	tuneMemory()

	cfg, err := config.Load(f.config)
	if err != nil {
		return err
	}
	if err := applyServeFlags(cfg, f); err != nil {
		return err
	}
	restCfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	certs, err := setupCerts(ctx, cfg)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	le := cfg.LeaderElection
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: newScheme(),
		// The guard holds every Service and Pod of the cluster in memory; keep only what it reads.
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields(), ByObject: reconciler.CacheByObject()},
		Metrics:                       metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:        f.healthAddr,
		LeaderElection:                *le.Enabled,
		LeaderElectionID:              le.LeaseName,
		LeaderElectionNamespace:       cfg.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &le.LeaseDuration.Duration,
		RenewDeadline:                 &le.RenewDeadline.Duration,
		RetryPeriod:                   &le.RetryPeriod.Duration,
		GracefulShutdownTimeout:       &cfg.Server.ShutdownGrace.Duration,
		WebhookServer: webhook.NewServer(webhook.ServerOptions{
			Host: f.webhookHost, Port: f.webhookPort, CertDir: cfg.Certs.Dir,
			EnableHTTP2: cfg.Server.EnableHTTP2, TLSOpts: certs.TLSOpts,
		}),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	store, err := templateStore(mgr, cfg, log)
	if err != nil {
		return err
	}
	injector, err := inject.New(cfg, store)
	if err != nil {
		return err
	}
	draining := &webhook.Draining{}
	mgr.GetWebhookServer().Register("/inject", webhook.CloseWhenDraining(&webhook.InjectHandler{
		Injector:   injector,
		Namespaces: namespaceLookup(mgr),
		Log:        logger.WithName("inject"),
		Metrics:    webhook.NewMetrics(crmetrics.Registry),
	}, draining))
	if err := setupGuard(mgr, cfg, injector, draining); err != nil {
		return fmt.Errorf("config guard: %w", err)
	}
	if certs.AddToManager != nil {
		if err := certs.AddToManager(mgr); err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	if certs.Ready != nil {
		if err := mgr.AddReadyzCheck("certificates", certs.Ready); err != nil {
			return err
		}
	}
	log.Info("starting", "namespace", cfg.Namespace, "certMode", cfg.Certs.Mode, "templates", store.Current().Names())
	if err := mgr.AddReadyzCheck("draining", func(*http.Request) error {
		if draining.On() {
			return errors.New("terminating: draining requests in flight")
		}
		return nil
	}); err != nil {
		return err
	}
	err = mgr.Start(drain(ctx, draining, cfg.Server.DrainDelay.Duration, log))
	if err != nil && ctx.Err() == nil && strings.Contains(err.Error(), "leader election lost") {
		// controller-runtime ends the manager when the lease is lost, typically because the API server
		// was unreachable for longer than the lease. Exiting would take admission down with it (and,
		// under Kubernetes, into CrashLoopBackOff); restarting in place serves admission again at once
		// and campaigns for the lease anew.
		log.Info("lost the leader lease; restarting in place so that admission keeps being served")
		time.Sleep(time.Second) // let requests in flight finish
		return reexec()
	}
	return err
}

// drain returns a context that ends delay after ctx does. Meanwhile the replica reports not ready and
// goes on answering, so it leaves the Service's endpoints before it stops accepting connections.
func drain(ctx context.Context, d *webhook.Draining, delay time.Duration, log logrLogger) context.Context {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		<-ctx.Done()
		d.Start()
		log.Info("terminating: not ready, still serving while endpoints update", "drainDelay", delay)
		time.Sleep(delay)
		cancel()
	}()
	return out
}

// reexec replaces the process with a fresh copy of itself: same pid, same arguments, no state.
func reexec() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

func applyServeFlags(cfg *config.Config, f serveFlags) error {
	if f.namespace != "" {
		cfg.Namespace = f.namespace
	}
	if f.certDir != "" {
		cfg.Certs.Dir = f.certDir
	}
	if f.templatesDir != "" {
		cfg.Injection.TemplatesDir = f.templatesDir
	}
	switch f.leaderElect {
	case "":
	case "true", "false":
		v := f.leaderElect == "true"
		cfg.LeaderElection.Enabled = &v
	default:
		return fmt.Errorf("--leader-elect: %q is not true or false", f.leaderElect)
	}
	return cfg.Validate()
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, networkingv1.AddToScheme, networkingv1beta1.AddToScheme, networkingv1alpha3.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // static registrations; a failure is a build bug
		}
	}
	return s
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

func newLogger(level, format string) (logrLogger, error) {
	opts := zap.Options{Development: format == "console"}
	switch level {
	case "debug":
		opts.Level = zapLevel(-1)
	case "info":
		opts.Level = zapLevel(0)
	case "error":
		opts.Level = zapLevel(2)
	default:
		return logrLogger{}, fmt.Errorf("--log-level: %q is not debug, info or error", level)
	}
	if format != "json" && format != "console" {
		return logrLogger{}, fmt.Errorf("--log-format: %q is not json or console", format)
	}
	return zap.New(zap.UseFlagOptions(&opts), zap.WriteTo(os.Stderr)), nil
}

// namespaceLookup reads namespaces from the manager's cache; a namespace created a moment ago may not
// be there yet, so a miss is confirmed with a direct read.
func namespaceLookup(mgr ctrl.Manager) webhook.NamespaceLookup {
	return func(ctx context.Context, name string) (inject.Namespace, error) {
		var ns corev1.Namespace
		err := mgr.GetClient().Get(ctx, client.ObjectKey{Name: name}, &ns)
		if apierrors.IsNotFound(err) {
			err = mgr.GetAPIReader().Get(ctx, client.ObjectKey{Name: name}, &ns)
		}
		if err != nil {
			return inject.Namespace{}, fmt.Errorf("namespace %s: %w", name, err)
		}
		return inject.Namespace{Name: name, Labels: ns.Labels}, nil
	}
}

// templateStore loads the templates and, when a directory is configured, watches it. Reloads are
// logged, counted, and recorded as Events on the templates ConfigMap when the config names it.
func templateStore(mgr ctrl.Manager, cfg *config.Config, log logrLogger) (*templates.Store, error) {
	if cfg.Injection.TemplatesDir == "" {
		return templates.NewStore(templates.Default()), nil
	}
	set, err := templates.LoadDir(cfg.Injection.TemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	store := templates.NewStore(set)
	event := func(eventtype, reason, note string, args ...any) {}
	if name := cfg.Injection.TemplatesConfigMap; name != "" {
		rec := mgr.GetEventRecorder("meshwarden-templates")
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace}}
		event = func(eventtype, reason, note string, args ...any) {
			rec.Eventf(cm, nil, eventtype, reason, "Reload", note, args...)
		}
	}
	w := &templates.Watcher{
		Dir:   cfg.Injection.TemplatesDir,
		Store: store,
		OnLoad: func(s *templates.Set) {
			log.Info("templates reloaded", "revision", s.Revision, "templates", s.Names())
			event(corev1.EventTypeNormal, "TemplatesLoaded", "templates %v in force, revision %s", s.Names(), s.Revision)
		},
		OnError: func(err error) {
			templateErrors.Inc()
			log.Error(err, "templates not reloaded; the previous set stays in force")
			msg := err.Error()
			if len(msg) > 800 { // an Event note holds 1 kB
				msg = msg[:800] + "..."
			}
			event(corev1.EventTypeWarning, "TemplatesRejected", "templates not reloaded, revision %s stays in force: %s", store.Current().Revision, msg)
		},
	}
	return store, mgr.Add(w)
}
