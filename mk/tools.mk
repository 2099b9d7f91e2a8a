# Control-plane tools for `make run` and the e2e tests, built from the Go module proxy into bin/.
# test/tools (kubernetes, etcd, kwok) and test/tools/helm are separate modules; the stamp file makes
# the build happen only when one of their go.mod/go.sum changes (or a binary is missing).

TOOLS_DIR := $(CURDIR)/test/tools
TOOLS_STAMP := $(BIN)/.tools.stamp
TOOLS_BINS := kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm
TOOLS_MODFILES := $(TOOLS_DIR)/go.mod $(TOOLS_DIR)/go.sum $(TOOLS_DIR)/helm/go.mod $(TOOLS_DIR)/helm/go.sum
# Stripped, no VCS stamping: the binaries are only run locally, and smaller links are faster.
TOOLS_GOFLAGS := -trimpath -ldflags=-s\ -w

# A binary deleted by hand (or a bin/ from an interrupted build) forces a rebuild too.
TOOLS_MISSING := $(strip $(foreach b,$(TOOLS_BINS) kwok-stages.yaml,$(if $(wildcard $(BIN)/$(b)),,$(b))))

TEST_PREREQS += tools

.PHONY: tools
tools: $(TOOLS_STAMP) ## Build kube-apiserver, etcd, kwok, kubectl, … into bin/ (cached).

$(TOOLS_STAMP): $(TOOLS_MODFILES) $(CURDIR)/mk/tools.mk $(if $(TOOLS_MISSING),tools-force)
	@mkdir -p $(BIN)
	@echo "building control-plane tools into bin/ (first time: several minutes)"
	cd $(TOOLS_DIR) && $(GO) build $(TOOLS_GOFLAGS) -o $(BIN)/ \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl sigs.k8s.io/kwok/cmd/kwok
	cd $(TOOLS_DIR) && $(GO) build $(TOOLS_GOFLAGS) -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	@# HELM_KUBE_LDFLAGS (mk/helm.mk) stamps the Kubernetes version helm template/lint assume, as release builds do.
	cd $(TOOLS_DIR)/helm && $(GO) build -trimpath -ldflags='-s -w $(HELM_KUBE_LDFLAGS)' -o $(BIN)/helm helm.sh/helm/v3/cmd/helm
	@# kwok needs Stage objects to move fake nodes and pods through their lifecycle; they ship in its module.
	@kwok=$$(cd $(TOOLS_DIR) && $(GO) list -m -f '{{.Dir}}' sigs.k8s.io/kwok) && \
	  for s in node/fast node/heartbeat pod/fast; do \
	    for f in $$kwok/kustomize/stage/$$s/*.yaml; do \
	      case $$f in */kustomization.yaml) continue;; esac; echo "---"; cat $$f; done; \
	  done > $(BIN)/kwok-stages.yaml
	@for b in $(TOOLS_BINS); do test -x $(BIN)/$$b || { echo "missing bin/$$b after build"; exit 1; }; done
	@touch $@

.PHONY: tools-force
tools-force:

.PHONY: tools-clean
tools-clean: ## Remove the built control-plane tools from bin/.
	rm -f $(TOOLS_STAMP) $(BIN)/kwok-stages.yaml $(addprefix $(BIN)/,$(TOOLS_BINS))
