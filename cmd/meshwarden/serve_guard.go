package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/reconciler"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/webhook"
	"github.com/meshwarden/meshwarden/webhook/validate"
)

// setupGuard registers the config guard on the manager: the /validate handler on its webhook server
// (every replica answers admission) and the two leader-elected controllers.
func setupGuard(mgr ctrl.Manager, cfg *config.Config, injector *inject.Injector, draining *webhook.Draining) error {
	opts := guard.OptionsFrom(cfg.Guard)
	log := ctrl.Log.WithName("guard")
	mgr.GetWebhookServer().Register("/validate", webhook.CloseWhenDraining(webhook.RequireReview(&admission.Webhook{Handler: &validate.Handler{
		Cache:       mgr.GetClient(),
		API:         mgr.GetAPIReader(),
		Options:     opts,
		DefaultMode: cfg.Guard.DefaultMode,
		Injector:    injector,
		Log:         log.WithName("validate"),
	}}), draining))
	metrics := reconciler.NewMetrics(crmetrics.Registry)
	rec := mgr.GetEventRecorder("meshwarden-guard")
	r := &reconciler.Reconciler{
		Client: mgr.GetClient(), Recorder: rec, Options: opts, Debounce: cfg.Guard.Debounce.Duration,
		Metrics: metrics, Log: log.WithName("reconciler"),
	}
	// Registering field indexes only creates informers; it needs no request or run context.
	if err := r.SetupWithManager(context.Background(), mgr); err != nil {
		return err
	}
	sc := &reconciler.SidecarReconciler{
		Client: mgr.GetClient(), Recorder: rec, Metrics: metrics, Log: log.WithName("sidecar-check"),
		ProxyName: inject.ProxyNameFor(cfg.Injection.Profile),
		Decide:    reconciler.InjectorDecision(injector),
	}
	return sc.SetupWithManager(mgr)
}
