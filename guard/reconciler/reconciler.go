// Package reconciler is the config guard's continuous front: a leader-elected controller that re-checks
// the Istio objects that depend on something that appeared, changed or disappeared, and tells their
// owners through Events (Warning BrokenReference, Normal ReferencesResolved) and Prometheus gauges. A
// second controller reports pods that run without the sidecar in injection-enabled namespaces.
package reconciler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/meshwarden/meshwarden/guard"
)

// Event reasons.
const (
	ReasonBrokenReference    = "BrokenReference"
	ReasonReferencesResolved = "ReferencesResolved"
	ReasonSidecarMissing     = "SidecarMissing"
)

// Recorder is the part of an events.k8s.io recorder the reconcilers use (mgr.GetEventRecorder fits).
type Recorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Key names one checked object. The controller's queue holds Keys, so one controller serves the
// three kinds and one snapshot is shared by all of them.
type Key struct {
	Kind      string // guard.KindVirtualService, guard.KindDestinationRule or guard.KindGateway
	Namespace string
	Name      string
}

func (k Key) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Reconciler checks one object per call against a snapshot of the cache.
type Reconciler struct {
	Client   client.Reader
	Recorder Recorder
	Options  guard.Options
	// Debounce is how long a change waits before its dependents are checked, so that a burst (kubectl
	// apply -f dir/) costs one snapshot and one check per dependent.
	Debounce time.Duration
	Metrics  *Metrics
	Log      logr.Logger

	mu   sync.Mutex              // guards last
	last map[Key][]guard.Finding // findings at the previous check, to tell new ones and healing apart

	snapMu sync.Mutex  // held while the snapshot is brought up to date and checked against
	live   *guard.Live // the snapshot, kept current from the changes that Invalidate names

	pendMu  sync.Mutex
	built   bool                    // a full snapshot exists, so changes can be applied one by one
	dirty   bool                    // the next check rebuilds the snapshot from the whole cache
	pending map[pendingKey]struct{} // objects changed since the snapshot was last brought up to date
}

// Reconcile checks the object and records what changed since its last check. The object is read from
// the snapshot, which holds the cache's objects as of the last watch event.
func (r *Reconciler) Reconcile(ctx context.Context, key Key) (reconcile.Result, error) {
	start := time.Now()
	defer func() { r.Metrics.ReconcileSeconds.Observe(time.Since(start).Seconds()) }()
	switch key.Kind {
	case guard.KindVirtualService, guard.KindDestinationRule, guard.KindGateway:
	default:
		return reconcile.Result{}, fmt.Errorf("unknown kind %q", key.Kind)
	}
	r.snapMu.Lock()
	snap, err := r.snapshot(ctx)
	var obj client.Object
	var findings []guard.Finding
	if err == nil {
		if o, ok := r.live.Object(key.Kind, key.Namespace, key.Name).(client.Object); ok {
			obj, findings = o, guard.CheckObject(snap, r.Options, o)
		}
	}
	r.snapMu.Unlock()
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("building the snapshot: %w", err)
	}
	r.record(key, obj, findings) // obj is nil when the object is gone
	return reconcile.Result{}, nil
}

// record emits Events for findings that are new since the last check, or one ReferencesResolved when
// the last finding went away, and updates the findings gauge. obj is nil when the object is gone.
func (r *Reconciler) record(key Key, obj client.Object, findings []guard.Finding) {
	var relevant []guard.Finding
	for _, f := range findings {
		if f.Severity != guard.SeverityInfo {
			relevant = append(relevant, f)
		}
	}
	r.mu.Lock()
	if r.last == nil {
		r.last = map[Key][]guard.Finding{}
	}
	prev := r.last[key]
	if len(relevant) == 0 {
		delete(r.last, key)
	} else {
		r.last[key] = relevant
	}
	r.Metrics.changeFindings(prev, relevant)
	r.mu.Unlock()
	if obj == nil {
		return
	}
	seen := map[string]bool{}
	for _, f := range prev {
		seen[f.Key()] = true
	}
	for _, f := range relevant {
		if !seen[f.Key()] {
			r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonBrokenReference, "Check", "%s", f.Short())
		}
	}
	if len(prev) > 0 && len(relevant) == 0 {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, ReasonReferencesResolved, "Check", "every reference of this %s resolves", key.Kind)
	}
}
