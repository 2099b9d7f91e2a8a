package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// report is what the stand-in saw, written as JSON for the end-to-end test to read.
type report struct {
	BootstrapValid bool   `json:"bootstrapValid"`
	BootstrapError string `json:"bootstrapError"`
	// UnresolvedTypes are extension @types in the bootstrap that this binary cannot decode.
	UnresolvedTypes  []string                `json:"unresolvedTypes"`
	NodeID           string                  `json:"nodeID"`
	Clusters         []string                `json:"clusters"`
	Listeners        []string                `json:"listeners"`
	Routes           map[string]routeSummary `json:"routes"`
	CertChainPEM     string                  `json:"certChainPEM"`
	RootCAPEM        string                  `json:"rootCAPEM"`
	ValidationErrors []string                `json:"validationErrors"`
	// FetchError says what was still missing when the wait for config timed out.
	FetchError string `json:"fetchError"`
	// Done is set once clusters, listeners, every route they name and both secrets have arrived.
	Done bool `json:"done"`
}

type routeSummary struct {
	VirtualHosts []virtualHostSummary `json:"virtualHosts"`
}

type virtualHostSummary struct {
	Name    string       `json:"name"`
	Domains []string     `json:"domains"`
	Routes  []routeEntry `json:"routes"`
}

type routeEntry struct {
	Prefix           string            `json:"prefix,omitempty"`
	Path             string            `json:"path,omitempty"`
	Cluster          string            `json:"cluster,omitempty"`
	WeightedClusters []weightedCluster `json:"weightedClusters,omitempty"`
	Timeout          string            `json:"timeout,omitempty"` // as Go prints it: "5s", "0s"
}

type weightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

// state is the stand-in's view of its config, fed by the xDS streams and read by the ports. Every
// change rewrites the report, so a test that reads it sees progress as it happens.
type state struct {
	path string
	done chan struct{} // closed when the report first becomes Done

	mu             sync.Mutex
	rep            report
	gotCDS, gotLDS bool
	routeNames     []string          // named by the listeners' RDS configs
	invalid        map[string]string // "cluster x" → its validation error
	counts         map[string]uint64 // Envoy stats that pilot-agent's readiness probe reads
}

func newState(path string) *state {
	return &state{
		path: path,
		done: make(chan struct{}),
		rep: report{ // empty rather than null in the JSON
			UnresolvedTypes: []string{}, Clusters: []string{}, Listeners: []string{},
			Routes: map[string]routeSummary{}, ValidationErrors: []string{},
		},
		invalid: map[string]string{},
		counts:  map[string]uint64{},
	}
}

// fatal records a start-up failure and returns the exit code for it.
func (s *state) fatal(err error) int {
	log.Printf("fatal: %v", err)
	s.update(func(r *report) { r.BootstrapValid, r.BootstrapError = false, err.Error() })
	return 1
}

func (s *state) update(f func(r *report)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.rep)
	s.settle()
}

// setResources records one response's resources of a kind ("cluster", "listener", "route" or
// "secret"): names are the resources it carried, invalid the validation error of each that has
// one. Clusters and listeners arrive as the whole set each time (state of the world), so all
// their old errors go; routes and secrets are replaced one by one.
func (s *state) setResources(kind string, names []string, invalid map[string]string, f func(r *report)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wholeSet := kind == "cluster" || kind == "listener"
	for key := range s.invalid {
		k, name, _ := strings.Cut(key, " ")
		if k == kind && (wholeSet || slices.Contains(names, name)) {
			delete(s.invalid, key)
		}
	}
	for name, err := range invalid {
		s.invalid[kind+" "+name] = err
	}
	switch kind {
	case "cluster":
		s.gotCDS = true
		s.countUpdate("cluster_manager.cds", len(invalid) == 0)
	case "listener":
		s.gotLDS = true
		s.countUpdate("listener_manager.lds", len(invalid) == 0)
	}
	f(&s.rep)
	s.settle()
}

// countUpdate keeps the update counters that pilot-agent's readiness probe reads from /stats.
func (s *state) countUpdate(prefix string, accepted bool) {
	if accepted {
		s.counts[prefix+".update_success"]++
	} else {
		s.counts[prefix+".update_rejected"]++
	}
}

// setRouteNames records the routes the listeners ask for, so Done waits for each of them.
func (s *state) setRouteNames(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routeNames = names
	for name := range s.rep.Routes {
		if !slices.Contains(names, name) {
			delete(s.rep.Routes, name) // no listener uses it any more, as Envoy would drop it
		}
	}
	s.settle()
}

// missing says, for a log line and the report, what has not arrived yet.
func (s *state) missing() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.missingLocked(), ", ")
}

func (s *state) missingLocked() []string {
	var m []string
	if !s.gotCDS {
		m = append(m, "clusters")
	}
	if !s.gotLDS {
		m = append(m, "listeners")
	}
	for _, name := range s.routeNames {
		if _, ok := s.rep.Routes[name]; !ok {
			m = append(m, "route "+name)
		}
	}
	if s.rep.CertChainPEM == "" {
		m = append(m, "secret "+secretCert)
	}
	if s.rep.RootCAPEM == "" {
		m = append(m, "secret "+secretRoot)
	}
	return m
}

// isDone and stats serve the admin and health ports.
func (s *state) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rep.Done
}

// stats returns Envoy-style "name: value" lines, sorted.
func (s *state) stats() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	serverState, workers := 3, 0 // INITIALIZING, as Envoy is until its first config is in
	if s.rep.Done {
		serverState, workers = 0, 1 // LIVE
	}
	lines := []string{
		fmt.Sprintf("server.state: %d", serverState),
		fmt.Sprintf("listener_manager.workers_started: %d", workers),
	}
	for _, stat := range []string{"cluster_manager.cds", "listener_manager.lds"} {
		for _, outcome := range []string{".update_success", ".update_rejected"} {
			lines = append(lines, fmt.Sprintf("%s: %d", stat+outcome, s.counts[stat+outcome]))
		}
	}
	slices.Sort(lines)
	return lines
}

// settle derives the report's summary fields and rewrites it; s.mu is held.
func (s *state) settle() {
	s.rep.ValidationErrors = s.rep.ValidationErrors[:0]
	for key, err := range s.invalid {
		s.rep.ValidationErrors = append(s.rep.ValidationErrors, key+": "+err)
	}
	slices.Sort(s.rep.ValidationErrors)
	if !s.rep.Done && s.rep.BootstrapValid && len(s.missingLocked()) == 0 {
		s.rep.Done = true
		close(s.done)
	}
	if err := s.write(); err != nil {
		log.Printf("write report: %v", err)
	}
}

// write replaces the report atomically, so a reader never sees half of it.
func (s *state) write() error {
	data, err := json.MarshalIndent(&s.rep, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".envoy-standin-report-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
