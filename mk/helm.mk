# The Helm chart (charts/meshwarden) and its tests (test/chart). The helm binary is bin/helm, built by
# `make tools` from test/tools/helm; `make helm` builds just that one when the rest is not needed.

HELM := $(BIN)/helm
CHART := $(CURDIR)/charts/meshwarden
# helm template/lint assume this cluster version (the release test/tools builds).
CHART_KUBE_VERSION ?= 1.37.0

# helm's release builds stamp the Kubernetes version `helm template` and `helm lint` assume; a plain
# go build leaves it at 1.20, which the chart refuses (native sidecars need 1.29).
HELM_KUBE_LDFLAGS := $(foreach p,pkg/chartutil pkg/lint/rules,\
  -X helm.sh/helm/v3/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/$(p).k8sVersionMinor=37)

.PHONY: helm
helm: ## Build only bin/helm (helm.sh/helm/v3 from test/tools/helm), if missing.
	@test -x $(HELM) || { mkdir -p $(BIN) && cd $(CURDIR)/test/tools/helm && \
	  $(GO) build -trimpath -ldflags='-s -w $(HELM_KUBE_LDFLAGS)' -o $(HELM) helm.sh/helm/v3/cmd/helm; }

.PHONY: chart-lint
chart-lint: helm ## helm lint --strict the chart with its default and test values.
	$(HELM) lint --strict $(CHART) --kube-version $(CHART_KUBE_VERSION)
	@for v in test/chart/testdata/values/*.yaml; do \
	  $(HELM) lint --strict $(CHART) --kube-version $(CHART_KUBE_VERSION) --values $$v >/dev/null || \
	  { echo "helm lint failed with $$v"; exit 1; }; done

.PHONY: chart-test
chart-test: helm ## Chart tests: goldens, strict decoding, selectors, RBAC, schema, lint.
	$(GO) test -count=1 ./test/chart

.PHONY: chart-golden
chart-golden: helm ## Rewrite the chart's golden helm template outputs (test/chart/testdata/golden).
	$(GO) test -count=1 ./test/chart -run 'TestGolden' -update

.PHONY: chart-template
chart-template: helm ## Print the chart rendered with default values.
	@$(HELM) template meshwarden $(CHART) --namespace meshwarden --kube-version $(CHART_KUBE_VERSION)
