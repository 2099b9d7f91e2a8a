# `make bench`: the benchmark suite of package bench (see docs/benchmarks.md). Writes the git-ignored
# bench-results.json and prints a table with the goals of issues 8 and 12. Takes about five minutes.

# Extra flags for cmd/benchreport, e.g. BENCH_ARGS='-rounds 9 -benchtime 2s'.
BENCH_ARGS ?=
# BENCH_APISERVER=1 also runs `meshwarden serve` against a local control plane (bin/, see `make tools`)
# holding the whole synthetic cluster, and takes guard.rss_mib from it: about 15 more minutes.
BENCH_APISERVER ?=

.PHONY: bench
bench: ## Run the benchmarks (per review, HTTPS load, guard at scale); write bench-results.json and a table.
	$(GO) run ./bench/cmd/benchreport -pkg ./bench -o $(CURDIR)/bench-results.json $(if $(BENCH_APISERVER),-apiserver) $(BENCH_ARGS)
