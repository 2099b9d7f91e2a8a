# `make run`: the local control plane with meshwarden injecting into it (test/devcluster).
# State and logs live in the git-ignored _run/devcluster; a new run wipes it first.

# Extra flags for test/devcluster, e.g. RUN_ARGS='--webhook=false' or '--failure-policy=Ignore --nodes=3'.
RUN_ARGS ?=

.PHONY: run
run: tools istio-tools ## Start etcd, kube-apiserver, controllers, kwok, istiod and meshwarden locally; Ctrl-C stops all.
	$(GO) build -o $(BIN)/devcluster ./test/devcluster
	@exec $(BIN)/devcluster $(RUN_ARGS)
