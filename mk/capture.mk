# capture/ and meshwarden-init: the traffic-capture init container. Its tests program real network
# namespaces as root, so they need ip, nft (to read the ruleset back) and the iptables tools.
APT_PACKAGES += nftables iptables iproute2

# Container tool and image names for the images target; building images is optional here.
CONTAINER_TOOL ?= docker
IMAGE_REPO ?= meshwarden
IMAGE_TAG ?= dev

.PHONY: capture-test
capture-test: deps ## Run the capture tests, network namespaces included (root; CI=true turns skips into failures).
	$(GO) test -count=1 ./capture/... ./cmd/meshwarden-init/...

.PHONY: capture-golden
capture-golden: ## Rewrite capture/testdata (--dry-run golden files) after an intended change.
	$(GO) test -count=1 ./capture -run TestDryRunGolden -update

.PHONY: images
images: ## Build the meshwarden and meshwarden-init images with $(CONTAINER_TOOL).
	$(CONTAINER_TOOL) build --target meshwarden-init -t $(IMAGE_REPO)/meshwarden-init:$(IMAGE_TAG) .
	$(CONTAINER_TOOL) build --target meshwarden-init-iptables -t $(IMAGE_REPO)/meshwarden-init:$(IMAGE_TAG)-iptables .
	$(CONTAINER_TOOL) build --target meshwarden -t $(IMAGE_REPO)/meshwarden:$(IMAGE_TAG) .
