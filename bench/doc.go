// Package bench holds meshwarden's benchmarks: one admission review through the /inject handler
// against the floor (decode and re-encode only), the real HTTPS server under a load generator, and the
// config guard at cluster scale. `make bench` runs them through cmd/benchreport, which writes
// bench-results.json and a table; `make test` runs each once at a small scale to keep them compiling.
package bench
