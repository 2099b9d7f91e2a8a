# meshwarden — see `make help`. Each part of the project keeps its targets in mk/*.mk.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
export GOFLAGS := -buildvcs=false
BIN := $(CURDIR)/bin
GO ?= go
# Debian packages the tests need; parts add to it in mk/*.mk, `make deps` installs them.
APT_PACKAGES ?=
# Extra prerequisites of `make test` (tools built before the suite runs); parts add to it.
TEST_PREREQS ?=

include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_.-]+:.*## /{printf "  \033[36m%-14s\033[0m %s\n",$$1,$$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build meshwarden and meshwarden-init into bin/.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: deps
deps: ## Install the Debian packages the tests need (root; no-op when present).
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; fi

.PHONY: test
test: deps $(TEST_PREREQS) ## Run every test: unit, golden, e2e on a real control plane, benchmarks once.
	$(GO) test -count=1 -timeout 40m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x ./...

.PHONY: lint
lint: ## go vet and gofmt.
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
