# skiff: `make run` starts a control plane; `make test` runs every test.

GO       ?= go
BIN      ?= $(CURDIR)/bin
# DATA_DIR is where `make run` keeps its state: skiff server's default data directory.
DATA_DIR ?= $(if $(filter 0,$(shell id -u)),/var/lib/skiff/server,$(or $(XDG_DATA_HOME),$(HOME)/.local/share)/skiff/server)
CNI_PLUGIN_DIR ?= /usr/lib/cni
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)
# kubectl version reads the Kubernetes version from component-base.
LDFLAGS  := -X skiff.dev/skiff/version.Version=$(VERSION) \
	-X k8s.io/component-base/version.gitVersion=v1.37.2 \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37
RUN_ARGS ?=
TEST_TIMEOUT ?= 30m

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Regenerate deepcopy, OpenAPI, model names and CRDs (config/crd).
	hack/update-codegen.sh

.PHONY: verify
verify: ## Fail when generated files are stale, go.mod is untidy, or code is unformatted/unvetted.
	hack/verify-codegen.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

##@ Build

.PHONY: build
build: ## Build bin/skiff (with the container shim, cmd/skiff-shim, inside it).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o nodeagent/shim/bin/skiff-shim ./cmd/skiff-shim
	$(GO) build -tags embedshim -ldflags "$(LDFLAGS)" -o $(BIN)/skiff ./cmd/skiff

PREFIX ?= /usr/local

.PHONY: install
install: build ## Install bin/skiff as $(PREFIX)/bin/skiff, so that `skiff` is on the PATH.
	install -D -m 0755 $(BIN)/skiff $(DESTDIR)$(PREFIX)/bin/skiff

.PHONY: run
run: build runtime-deps ## Start skiff server (etcd, API server, controllers, a local agent) with the samples' image; flags in RUN_ARGS.
	@$(GO) run ./hack/busybox-image -o $(DATA_DIR)/agent/images/busybox.tar || \
		echo "no static busybox: config/samples will not find skiff.local/busybox (apt-get install busybox-static)"
	$(BIN)/skiff server --data-dir $(DATA_DIR) $(RUN_ARGS)

.PHONY: runtime-deps
runtime-deps: ## Install runc (when no OCI runtime is present), the CNI plugins and iptables (Instance networking) and busybox-static (the samples' image) from Debian's packages, as root.
	@missing=""; command -v busybox >/dev/null || missing="$$missing busybox-static"; \
	[ -x $(CNI_PLUGIN_DIR)/bridge ] || missing="$$missing containernetworking-plugins"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; fi
	@if ! command -v youki >/dev/null && ! command -v crun >/dev/null && ! command -v runc >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing runc"; apt-get update -qq && apt-get install -y -qq runc; \
		else echo "no OCI runtime and not root: the local agent will simulate containers"; fi; \
	fi

##@ Test

.PHONY: test-deps
test-deps: ## Install what the tests run (runc, busybox-static, systemd-analyze, the CNI plugins, iptables, iproute2, curl) from Debian's packages, as root.
	@missing=""; command -v runc >/dev/null || missing="$$missing runc"; \
	command -v busybox >/dev/null || missing="$$missing busybox-static"; \
	[ -x $(CNI_PLUGIN_DIR)/bridge ] || missing="$$missing containernetworking-plugins"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
		else echo "missing$$missing: the runtime tests will skip (install them as root)"; fi; \
	fi

# CHARTS are the Helm charts users start from: charts/NAME and charts/examples/NAME.
CHARTS := $(patsubst %/Chart.yaml,%,$(wildcard charts/*/Chart.yaml charts/examples/*/Chart.yaml))

.PHONY: lint-charts
lint-charts: ## Lint the Helm charts in charts/ with the Helm that go.mod pins (go tool helm).
	$(GO) tool helm lint --strict $(CHARTS)

.PHONY: test
test: verify build test-deps lint-charts ## Run verify, chart lint, unit, integration and e2e tests (real etcd, runc, kubectl, helm).
	SKIFF_BIN=$(BIN)/skiff HELM_BIN=$$($(GO) tool -n helm) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-unit
test-unit: ## Run the fast unit tests only.
	$(GO) test -short ./apis/... ./identity/...

.PHONY: bench
bench: build ## Print the performance table (apiserver, three servers, agent, network, fleet, controllers, placement, MCP bridge, gossip and node death).
	SKIFF_BIN=$(BIN)/skiff $(GO) run ./test/bench
