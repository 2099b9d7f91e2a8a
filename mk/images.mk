# Container images. `make images` needs no Docker: hack/make-images (package hack/images) builds
# the static binaries and puts each on an empty image with go-containerregistry, written as an OCI
# image layout tarball for `ctr images import`: meshwarden, meshwarden-init, and the test images
# pause and meshwarden-test-envoy-standin. The same source gives the same digests (fixed times,
# reproducible binaries). `docker-images` builds the shipped images from the Dockerfile instead.

# The images' architecture. Unset, it is this machine's; `GOARCH=arm64 make images` cross-compiles.
IMAGES_ARCH = $(or $(GOARCH),$(shell $(GO) env GOHOSTARCH))
IMAGES_DIR ?= $(BIN)/images
# IMAGES=pause,meshwarden builds only those.
IMAGES ?=

.PHONY: images
images: ## Build OCI image tarballs without Docker into bin/images/linux_<arch>/ (GOARCH=arm64 to cross-build).
	@# GOARCH and GOOS are the images', not the builder's, which runs here.
	GOARCH= GOOS= $(GO) run ./hack/make-images -arch=$(IMAGES_ARCH) -out=$(IMAGES_DIR) $(if $(IMAGES),-only=$(IMAGES))

# Docker's build of the shipped images, from the Dockerfile (meshwarden-init-iptables only there).
CONTAINER_TOOL ?= docker
IMAGE_REPO ?= meshwarden
IMAGE_TAG ?= dev

.PHONY: docker-images
docker-images: ## Build the shipped images from the Dockerfile with CONTAINER_TOOL (default docker).
	$(CONTAINER_TOOL) build --target meshwarden-init -t $(IMAGE_REPO)/meshwarden-init:$(IMAGE_TAG) .
	$(CONTAINER_TOOL) build --target meshwarden-init-iptables -t $(IMAGE_REPO)/meshwarden-init:$(IMAGE_TAG)-iptables .
	$(CONTAINER_TOOL) build --target meshwarden -t $(IMAGE_REPO)/meshwarden:$(IMAGE_TAG) .
