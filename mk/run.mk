# `make run`: the local control plane with meshwarden injecting into it (test/devcluster).
# State and logs live in the git-ignored _run/devcluster; a new run wipes it first.

# Extra flags for test/devcluster, e.g. RUN_ARGS='--webhook=false' or '--failure-policy=Ignore --nodes=3'.
RUN_ARGS ?=
# NODE=real adds a real node (kubelet, containerd, runc) beside the kwok node: root only.
NODE ?= kwok

.PHONY: run
run: tools istio-tools $(if $(filter real,$(NODE)),deps node-tools) ## Start the control plane, kwok (NODE=real: a real node too), istiod and meshwarden locally; Ctrl-C stops all.
	$(GO) build -o $(BIN)/devcluster ./test/devcluster
	@exec $(BIN)/devcluster --node=$(NODE) $(RUN_ARGS)
