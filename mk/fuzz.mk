# Fuzzing and fault tests (issue 9; figures in docs/reliability.md).
#
# `make fuzz` runs every native fuzz target of the module, one after the other (the machine is
# shared), each for FUZZTIME. Targets are found by grepping `func FuzzX(` in *_test.go, so new ones
# join without editing this file; FUZZ=regexp picks some. Before fuzzing, the pods of the golden
# inputs (cmd/meshwarden/testdata/inject) are written into the fuzz cache as seeds of the
# targets that take whole pods or AdmissionReviews. A crasher makes `go test` write the input to
# <package>/testdata/fuzz/<Target>/: commit it with the fix and it runs as a regression seed in
# every `go test` from then on. The summary (target, executions, result) goes to stdout and to
# $(FUZZ_DIR)/summary.tsv; the run fails if any target failed, after running all of them.
FUZZTIME ?= 30s
# Go minimises every new interesting input for up to 60s by default, during which a 30s run makes
# no executions at all (whole AdmissionReviews are slow to minimise); crashers get as long.
FUZZMINIMIZETIME ?= 5s
FUZZ ?= .
FUZZ_DIR ?= $(CURDIR)/_run/fuzz
FUZZ_MODULE := github.com/meshwarden/meshwarden

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 30s) each; FUZZ=regexp selects targets.
	@mkdir -p $(FUZZ_DIR); : > $(FUZZ_DIR)/summary.tsv; \
	MESHWARDEN_FUZZ_CACHE="$$($(GO) env GOCACHE)/fuzz/$(FUZZ_MODULE)" \
	  $(GO) test -count=1 -run '^TestWriteGoldenFuzzSeeds$$' ./inject/ >/dev/null || exit 1; \
	failed=0; \
	for spec in $$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' . \
	    | grep -v '^./_run/' | sed -E 's|^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($$|\1:\2|' | sort -u); do \
	  pkg=$${spec%%:*}; target=$${spec##*:}; \
	  echo "$$target" | grep -Eq -- '$(FUZZ)' || continue; \
	  log=$(FUZZ_DIR)/$$target.log; \
	  printf '%-28s %-22s ' "$$target" "$$pkg"; \
	  if $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ >$$log 2>&1; then res=ok; \
	  else res=FAIL; failed=1; fi; \
	  execs=$$(grep -Eo 'execs: [0-9]+' $$log | tail -1 | grep -Eo '[0-9]+'); \
	  crasher=$$(grep -Eo 'testdata/fuzz/[^ ]+' $$log | head -1); \
	  echo "$$res execs=$${execs:-0} $$crasher"; \
	  printf '%s\t%s\t%s\t%s\t%s\n' "$$target" "$$pkg" "$$res" "$${execs:-0}" "$$crasher" >> $(FUZZ_DIR)/summary.tsv; \
	done; \
	echo "summary: $(FUZZ_DIR)/summary.tsv (fuzztime $(FUZZTIME) per target)"; \
	exit $$failed

# The fault tests at full size (2,000 pods through the rolling restart); `make test` runs them at 200.
# FAULT_HTTP2=1 runs the replicas with server.enableHTTP2 for comparison.
FAULT_PODS ?= 2000
FAULT_HTTP2 ?=

.PHONY: faults
faults: $(TEST_PREREQS) ## Run the e2e fault tests at full size (FAULT_PODS=2000) on the real control plane.
	@mkdir -p $(CURDIR)/_run; set -o pipefail; \
	MESHWARDEN_FAULT_FULL=1 MESHWARDEN_FAULT_PODS=$(FAULT_PODS) MESHWARDEN_FAULT_HTTP2=$(FAULT_HTTP2) \
	  $(GO) test -count=1 -timeout 30m -v -run '^TestFault' ./test/e2e/ 2>&1 | tee $(CURDIR)/_run/faults.log | grep -E 'FIGURES|^(---|ok|FAIL|PASS)'
