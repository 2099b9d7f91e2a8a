# The real node (issue 19): kubelet from the test/tools module (the control plane's release), and
# containerd, ctr and containerd-shim-runc-v2 from test/tools/containerd, pure Go. runc and the CNI
# plugins (bridge, host-local, loopback, portmap) come from Debian. Cached like the other tools.

NODE_K8S_DIR := $(CURDIR)/test/tools
NODE_TOOLS_DIR := $(CURDIR)/test/tools/containerd
NODE_TOOLS_STAMP := $(BIN)/.node-tools.stamp
NODE_TOOLS_BINS := kubelet containerd ctr containerd-shim-runc-v2
NODE_TOOLS_MODFILES := $(NODE_K8S_DIR)/go.mod $(NODE_K8S_DIR)/go.sum $(NODE_TOOLS_DIR)/go.mod $(NODE_TOOLS_DIR)/go.sum
NODE_TOOLS_MISSING := $(strip $(foreach b,$(NODE_TOOLS_BINS),$(if $(wildcard $(BIN)/$(b)),,$(b))))
# containerd's snapshotters that need cgo or kernel features this machine lacks are left out.
CONTAINERD_TAGS := no_btrfs no_devmapper no_zfs no_aufs

# Stamp the kubelet's version as release builds do; unstamped it reports v0.0.0-master+$Format:%H$.
KUBELET_VERSION = $(shell cd $(NODE_K8S_DIR) && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
KUBELET_LDFLAGS = -s -w -X k8s.io/component-base/version.gitVersion=$(KUBELET_VERSION) \
  -X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBELET_VERSION)))) \
  -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBELET_VERSION))) \
  -X k8s.io/component-base/version.gitTreeState=clean

APT_PACKAGES += runc containernetworking-plugins
TEST_PREREQS += node-tools

.PHONY: node-tools
node-tools: $(NODE_TOOLS_STAMP) ## Build kubelet, containerd, ctr and the runc shim into bin/ (cached).

$(NODE_TOOLS_STAMP): $(NODE_TOOLS_MODFILES) $(CURDIR)/mk/node.mk $(if $(NODE_TOOLS_MISSING),node-tools-force)
	@mkdir -p $(BIN)
	@echo "building kubelet and containerd into bin/ (first time: about 7 minutes)"
	cd $(NODE_K8S_DIR) && $(GO) build -trimpath -ldflags='$(KUBELET_LDFLAGS)' -o $(BIN)/ k8s.io/kubernetes/cmd/kubelet
	cd $(NODE_TOOLS_DIR) && CGO_ENABLED=0 $(GO) build $(TOOLS_GOFLAGS) -tags '$(CONTAINERD_TAGS)' -o $(BIN)/ \
	  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
	  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	@for b in $(NODE_TOOLS_BINS); do test -x $(BIN)/$$b || { echo "missing bin/$$b after build"; exit 1; }; done
	@touch $@

.PHONY: node-tools-force
node-tools-force:

.PHONY: node-tools-clean
node-tools-clean: ## Remove kubelet and containerd from bin/.
	rm -f $(NODE_TOOLS_STAMP) $(addprefix $(BIN)/,$(NODE_TOOLS_BINS))
