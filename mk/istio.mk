# istiod (pilot-discovery) and pilot-agent for the tests that run a real Istio control plane
# (test/cluster StartIstiod). test/tools/istio is a module of its own: istio.io/istio pins k8s.io
# libraries of another release than test/tools. Like tools.mk, a stamp file rebuilds only when its
# go.mod/go.sum or this file changes, or an output is missing.

ISTIO_TOOLS_DIR := $(CURDIR)/test/tools/istio
ISTIO_TOOLS_STAMP := $(BIN)/.istio-tools.stamp
ISTIO_TOOLS_BINS := pilot-discovery pilot-agent
# Besides the binaries: Envoy's bootstrap template (image content in Istio, which pilot-agent reads
# from var/lib/istio/envoy/) and the istio.io/istio module version they were built from.
ISTIO_TOOLS_FILES := istio/envoy_bootstrap_tmpl.json istio/version
ISTIO_TOOLS_MODFILES := $(ISTIO_TOOLS_DIR)/go.mod $(ISTIO_TOOLS_DIR)/go.sum
ISTIO_TOOLS_MISSING := $(strip $(foreach f,$(ISTIO_TOOLS_BINS) $(ISTIO_TOOLS_FILES),$(if $(wildcard $(BIN)/$(f)),,$(f))))

TEST_PREREQS += istio-tools

.PHONY: istio-tools
istio-tools: $(ISTIO_TOOLS_STAMP) ## Build istiod (pilot-discovery) and pilot-agent into bin/ (cached).

# Istio's release builds stamp pkg/version; so does this one, with what its Makefile would use for a
# dev build: <VERSION file>-dev and the commit of the pseudo-version. An unstamped "unknown" works
# too, but a module version such as v0.0.0-… must not go there: istiod would read it as Istio 0.0
# and treat every proxy as ancient.
$(ISTIO_TOOLS_STAMP): $(ISTIO_TOOLS_MODFILES) $(CURDIR)/mk/istio.mk $(if $(ISTIO_TOOLS_MISSING),istio-tools-force)
	@mkdir -p $(BIN)/istio
	@echo "building pilot-discovery and pilot-agent into bin/ (first time: several minutes)"
	@set -e; cd $(ISTIO_TOOLS_DIR); \
	  $(GO) mod download istio.io/istio; \
	  read -r ver dir <<<"$$($(GO) list -m -f '{{.Version}} {{.Dir}}' istio.io/istio)"; \
	  pkg=istio.io/istio/pkg/version; \
	  stamp="-X $$pkg.buildVersion=$$(cat $$dir/VERSION)-dev -X $$pkg.buildGitRevision=$${ver##*-} -X $$pkg.buildStatus=Clean"; \
	  echo "istio.io/istio $$ver"; \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w $$stamp" -o $(BIN)/ \
	    istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/pilot/cmd/pilot-agent; \
	  install -m 0644 $$dir/tools/packaging/common/envoy_bootstrap.json $(BIN)/istio/envoy_bootstrap_tmpl.json; \
	  echo "$$ver" > $(BIN)/istio/version
	@for b in $(ISTIO_TOOLS_BINS); do test -x $(BIN)/$$b || { echo "missing bin/$$b after build"; exit 1; }; done
	@touch $@

.PHONY: istio-tools-force
istio-tools-force:

.PHONY: istio-tools-clean
istio-tools-clean: ## Remove istiod, pilot-agent and bin/istio.
	rm -rf $(ISTIO_TOOLS_STAMP) $(BIN)/istio $(addprefix $(BIN)/,$(ISTIO_TOOLS_BINS))
