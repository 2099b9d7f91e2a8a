# capture/ and meshwarden-init: the traffic-capture init container. Its tests program real network
# namespaces as root, so they need ip, nft (to read the ruleset back) and the iptables tools.
APT_PACKAGES += nftables iptables iproute2

.PHONY: capture-test
capture-test: deps ## Run the capture tests, network namespaces included (root; CI=true turns skips into failures).
	$(GO) test -count=1 ./capture/... ./cmd/meshwarden-init/...

.PHONY: capture-golden
capture-golden: ## Rewrite capture/testdata (--dry-run golden files) after an intended change.
	$(GO) test -count=1 ./capture -run TestDryRunGolden -update

