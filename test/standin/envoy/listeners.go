package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serveListeners binds the ports Envoy has in a sidecar. A port that cannot be bound is logged and
// skipped, since the stand-in may run where another process holds it. quit is called by the admin
// API's /quitquitquit. The returned function closes the listeners.
func serveListeners(st *state, quit func()) (stop func()) {
	var listeners []net.Listener
	listen := func(port int, hosts []string, serve func(net.Listener)) {
		for _, host := range hosts {
			network := "tcp4" // tcp4 and tcp6 apart, so that [::] does not also claim 0.0.0.0
			if strings.Contains(host, ":") {
				network = "tcp6"
			}
			ln, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				log.Printf("not listening on %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), err)
				continue
			}
			listeners = append(listeners, ln)
			go serve(ln)
		}
	}
	everywhere := []string{"0.0.0.0", "::"}
	for _, port := range []int{15001, 15006} { // outbound and inbound capture
		listen(port, everywhere, func(ln net.Listener) { serveCapture(ln, port) })
	}
	listen(15021, everywhere, serveHTTP(healthHandler(st)))
	listen(15090, everywhere, serveHTTP(prometheusHandler()))
	listen(15000, []string{"127.0.0.1", "::1"}, serveHTTP(adminHandler(st, quit))) // admin is local only
	return func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
}

func serveHTTP(h http.Handler) func(net.Listener) {
	return func(ln net.Listener) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Printf("serve %s: %v", ln.Addr(), err)
		}
	}
}

// serveCapture answers each connection that iptables redirected to a capture port with where it
// was going, so a test can tell that traffic was captured and by which rule.
func serveCapture(ln net.Listener, port int) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Printf("accept on %s: %v", ln.Addr(), err)
			}
			return
		}
		go func() {
			defer conn.Close()
			dst := "unknown"
			if tcp, ok := conn.(*net.TCPConn); ok {
				if addr, err := originalDst(tcp); err != nil {
					log.Printf("port %d: no original destination for %s: %v", port, conn.RemoteAddr(), err)
				} else {
					dst = addr.String()
				}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "standin:%d %s\n", port, dst)
		}()
	}
}

// healthHandler is the sidecar's readiness port, which kubelet probes.
func healthHandler(st *state) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !st.isDone() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready")
	})
	return mux
}

// prometheusHandler serves one fake metric, enough for pilot-agent to merge into its own.
func prometheusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "meshwarden_envoy_standin_up 1")
	})
	return mux
}

// adminHandler answers the admin paths pilot-agent calls: its readiness probe reads /stats, its
// shutdown posts /drain_listeners and /quitquitquit.
func adminHandler(st *state, quit func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !st.isDone() {
			http.Error(w, "INITIALIZING", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		filter, err := regexp.Compile(r.URL.Query().Get("filter"))
		if err != nil {
			http.Error(w, "invalid filter: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, line := range st.stats() {
			if name, _, _ := strings.Cut(line, ":"); filter.MatchString(name) {
				fmt.Fprintln(w, line)
			}
		}
	})
	mux.HandleFunc("GET /server_info", func(w http.ResponseWriter, _ *http.Request) {
		state := "INITIALIZING"
		if st.isDone() {
			state = "LIVE"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": "meshwarden-envoy-standin", "state": state})
	})
	mux.HandleFunc("POST /quitquitquit", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OK")
		w.(http.Flusher).Flush() // answer before the process goes
		quit()
	})
	// Anything else, such as POST /drain_listeners, succeeds with nothing to do.
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
	return mux
}

// once makes f safe to call more than once.
func once(f func()) func() {
	var o sync.Once
	return func() { o.Do(f) }
}
