package main

import (
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	uzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

type logrLogger = logr.Logger

func zapLevel(l int8) uzap.AtomicLevel { return uzap.NewAtomicLevelAt(zapcore.Level(l)) }

// templateErrors counts template directories that failed to load (the previous set stayed in force).
var templateErrors = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "meshwarden_templates_load_errors_total",
	Help: "Template reloads refused because a template did not parse; the previous set stayed in force.",
})

func init() { crmetrics.Registry.MustRegister(templateErrors) }
