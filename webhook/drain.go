package webhook

import (
	"net/http"
	"sync/atomic"
)

// Draining is set when the replica is terminating.
type Draining struct{ on atomic.Bool }

// Start marks the replica as terminating.
func (d *Draining) Start() { d.on.Store(true) }

// On reports whether the replica is terminating.
func (d *Draining) On() bool { return d.on.Load() }

// CloseWhenDraining answers as h does, but while the replica drains every answer closes its
// connection. HTTP/1.1 has no way to tell a client "this connection is going away" other than closing
// it, and a server-side close of an idle keep-alive connection races the client's next request on it
// (the API server does not retry a webhook POST that hit a closed connection). Closing after each
// answer during the drain moves the API server onto fresh connections, which reach replicas that stay.
func CloseWhenDraining(h http.Handler, d *Draining) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.On() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
