# The build tools are pinned in tools/go.mod (tool directives) and built from
# the Go module proxy into bin/ when it changes.
TOOLS_MOD := tools/go.mod tools/go.sum
HELM_VERSION := $(shell sed -n 's/^[[:space:]]*helm.sh\/helm\/v3 \(v[^ ]*\).*/\1/p' tools/go.mod)
K8S_VERSION ?= 1.37.2

# The release this checkout builds is the chart's appVersion: a release bumps
# it with the chart's version and CHANGELOG.md.
VERSION ?= $(shell sed -n 's/^appVersion: *//p' charts/surge-operator/Chart.yaml)
# The commit built, empty outside a git checkout.
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
# The timestamps of builds and images; the last commit's time gives the same
# binaries and image for the same commit on any machine.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
VERSION_PKG := github.com/surge-operator/surge-operator/internal/version
LDFLAGS := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(REVISION) -X $(VERSION_PKG).sourceDateEpoch=$(SOURCE_DATE_EPOCH)

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
HELM_DOCS ?= $(LOCALBIN)/helm-docs
COSIGN ?= $(LOCALBIN)/cosign
CRANE ?= $(LOCALBIN)/crane
CYCLONEDX_GOMOD ?= $(LOCALBIN)/cyclonedx-gomod
IMG ?= surge-operator:latest

# The race detector is on for every test: the operator runs reconciles,
# informers and background listings concurrently.
GOTEST_FLAGS ?= -count=1 -race -timeout=30m
GO_DIRS := main.go api cmd internal pkg test examples tools hack
# Modules of their own, which go test ./... at the root does not reach.
EXAMPLE_MODULES := examples/onboarding

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from the markers, and the test kit's copy of the CRDs.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	rm -f pkg/surgetest/crds/*.yaml
	cp config/crd/bases/*.yaml pkg/surgetest/crds/

.PHONY: chart
chart: manifests ## Write the chart's CRDs, RBAC rules and alerts from config/ (tools/sync-chart).
	cd tools && go build -o $(LOCALBIN)/sync-chart ./sync-chart
	$(LOCALBIN)/sync-chart

.PHONY: chart-readme
chart-readme: helm-docs ## Write the chart's README.md from its README.md.gotmpl and the "# --" comments of its values.yaml (helm-docs).
	$(HELM_DOCS) --chart-search-root charts --sort-values-order file --skip-version-footer --log-level warning

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods from the markers.
	$(CONTROLLER_GEN) object paths="./..."

.PHONY: api-docs
api-docs: crd-ref-docs ## Generate docs/api.md, the API reference, from the types in api/v1alpha1 (crd-ref-docs, with the templates of hack/api-docs).
	$(CRD_REF_DOCS) --source-path=api/v1alpha1 --config=hack/api-docs/config.yaml --renderer=markdown \
		--templates-dir=hack/api-docs/templates --output-path=docs/api.md --log-level=WARN

.PHONY: verify-generated
verify-generated: controller-gen ## Fail when the committed generated code or manifests are stale.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify-generated.sh

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $(GO_DIRS)

.PHONY: vet
vet: ## Run go vet on the code.
	go vet ./...
	for module in $(EXAMPLE_MODULES) tools; do (cd $$module && go vet ./...) || exit 1; done

.PHONY: lint
lint: vet ## Check formatting and vet the code.
	@unformatted="$$(gofmt -s -l $(GO_DIRS))"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed: $$unformatted"; exit 1; fi

.PHONY: test
test: verify-generated lint envtest helm ## Run every test: unit, envtest, CRD validation, the Helm chart, the image, the examples (the README's test command).
	HELM=$(HELM) KUBEBUILDER_ASSETS="$$(hack/envtest-binaries.sh)" go test $(GOTEST_FLAGS) ./...
	for module in $(EXAMPLE_MODULES); do (cd $$module && KUBEBUILDER_ASSETS="$$(../../hack/envtest-binaries.sh)" go test $(GOTEST_FLAGS) ./...) || exit 1; done

.PHONY: verify-protocol
verify-protocol: ## Explore the create protocol's simulation to a deeper bound than make test does (3 faults or environment changes, 5 steps; about 10 minutes).
	go test -count=1 -timeout=30m -run 'TestSimulationOfTheCreateProtocol|TestEveryBrokenVariantIsCaught' -v ./internal/remote/ -args -sim.faults=3 -sim.steps=5

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest from source, once (cached per user).
	K8S_VERSION=$(K8S_VERSION) hack/envtest-binaries.sh >/dev/null

##@ Build

.PHONY: build
build: cli ## Build the manager binary and kubectl surge, stamped with VERSION and REVISION (manager --version).
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager .

.PHONY: cli
cli: ## Build the kubectl plugin bin/kubectl-surge; on PATH, kubectl runs it as kubectl surge.
	go build -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/kubectl-surge ./cmd/kubectl-surge

IMAGE_TAG ?= $(VERSION)
# Where the manager's image is pushed; the packaged chart installs it from there.
IMAGE_REPO ?= ghcr.io/surge-operator/surge-operator
IMAGE_DIR ?= dist/image
EMULATOR_IMAGE_DIR ?= dist/emulator-image

.PHONY: image
image: cyclonedx-gomod ## Build the manager's and the Surge emulator's images for linux/amd64 and linux/arm64 with ko as OCI layouts in dist/image and dist/emulator-image, with OCI labels and a CycloneDX SBOM, without a container engine.
	cd tools && go build -o $(LOCALBIN)/release ./release
	$(LOCALBIN)/release -image manager -out $(IMAGE_DIR) -tag $(IMAGE_TAG) -version $(VERSION) -revision "$(REVISION)" -source-date-epoch $(SOURCE_DATE_EPOCH)
	$(LOCALBIN)/release -image surge-emulator -out $(EMULATOR_IMAGE_DIR) -tag $(IMAGE_TAG) -version $(VERSION) -revision "$(REVISION)" -source-date-epoch $(SOURCE_DATE_EPOCH)

CHART_PACKAGE_DIR ?= dist/chart

.PHONY: chart-package
chart-package: image helm ## Build the images, then package the chart into dist/chart with its image set to IMAGE_REPO:IMAGE_TAG at the digest make image built, and version and appVersion to VERSION.
	cd tools && go build -o $(LOCALBIN)/package-chart ./package-chart
	$(LOCALBIN)/package-chart -helm $(HELM) -chart charts/surge-operator -image-dir $(IMAGE_DIR) -repository $(IMAGE_REPO) -version $(VERSION) -out $(CHART_PACKAGE_DIR)

RELEASE_DIR ?= dist/release
# Where make publish pushes the chart, as an OCI artifact.
CHART_REPO ?= oci://ghcr.io/surge-operator/charts
# A cosign private key signs the release's files (make release) and the
# pushed image and chart (make publish), offline: nothing goes to a
# transparency log. COSIGN_PASSWORD unlocks it.
COSIGN_KEY ?=
# INSECURE_REGISTRY=1 pushes over plain HTTP, to a registry on this machine.
INSECURE_REGISTRY ?=
CHART_VERSION = $(patsubst v%,%,$(VERSION))
RELEASE_FILES = surge-operator-$(CHART_VERSION).tgz install.yaml crds.yaml checksums.txt surge.yaml \
	surge-operator.cdx.json kubectl-surge.cdx.json provenance.intoto.json

.PHONY: release
release: helm cosign cyclonedx-gomod ## Build a release offline into RELEASE_DIR: the image for linux/amd64 and arm64 by ko, as an OCI layout; the chart pinned to its digest; install.yaml and crds.yaml; kubectl surge for linux and darwin with checksums and a krew manifest; CycloneDX SBOMs with licences; SLSA provenance; with COSIGN_KEY, a signature of each file (docs/releasing.md).
	cd tools && go build -o $(LOCALBIN)/release ./release && go build -o $(LOCALBIN)/package-chart ./package-chart
	$(LOCALBIN)/release -version $(VERSION) -out $(RELEASE_DIR) -repository $(IMAGE_REPO) -revision "$(REVISION)" -source-date-epoch $(SOURCE_DATE_EPOCH)
	$(LOCALBIN)/package-chart -helm $(HELM) -image-dir $(RELEASE_DIR)/image -repository $(IMAGE_REPO) -version $(VERSION) -out $(RELEASE_DIR)
	$(LOCALBIN)/release -provenance -version $(VERSION) -out $(RELEASE_DIR) -repository $(IMAGE_REPO) -revision "$(REVISION)"
	if [ -n "$(COSIGN_KEY)" ]; then for file in $(RELEASE_FILES); do \
		$(COSIGN) sign-blob --yes --key "$(COSIGN_KEY)" --tlog-upload=false --output-signature $(RELEASE_DIR)/$$file.sig $(RELEASE_DIR)/$$file >/dev/null || exit 1; \
	done; fi

.PHONY: publish
publish: helm cosign crane ## Push a release make release built: the image to IMAGE_REPO:VERSION, the chart to CHART_REPO, and with COSIGN_KEY their signatures and, on the image, its SBOM and provenance as attestations, in cosign's format.
	$(CRANE) push $(if $(INSECURE_REGISTRY),--insecure) $(RELEASE_DIR)/image $(IMAGE_REPO):$(VERSION)
	$(HELM) push $(if $(INSECURE_REGISTRY),--plain-http) $(RELEASE_DIR)/surge-operator-$(CHART_VERSION).tgz $(CHART_REPO)
	if [ -n "$(COSIGN_KEY)" ]; then for artifact in $(IMAGE_REPO):$(VERSION) $(patsubst oci://%,%,$(CHART_REPO))/surge-operator:$(CHART_VERSION); do \
		ref="$${artifact%:*}@$$($(CRANE) digest $(if $(INSECURE_REGISTRY),--insecure) $$artifact)" && \
		$(COSIGN) sign --yes --key "$(COSIGN_KEY)" --tlog-upload=false $(if $(INSECURE_REGISTRY),--allow-insecure-registry --allow-http-registry) "$$ref" || exit 1; \
	done; \
	image="$(IMAGE_REPO)@$$($(CRANE) digest $(if $(INSECURE_REGISTRY),--insecure) $(IMAGE_REPO):$(VERSION))" && \
	for attestation in cyclonedx:surge-operator.cdx.json slsaprovenance1:provenance.slsa.json; do \
		$(COSIGN) attest --yes --key "$(COSIGN_KEY)" --tlog-upload=false $(if $(INSECURE_REGISTRY),--allow-insecure-registry --allow-http-registry) \
			--type "$${attestation%%:*}" --predicate "$(RELEASE_DIR)/$${attestation#*:}" "$$image" >/dev/null || exit 1; \
	done; fi

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml: the whole installation in one file, with the manager image IMG.
	hack/build-installer.sh "$(IMG)" dist/install.yaml

.PHONY: run
run: envtest ## Run the operator locally on a local control plane and the Surge emulator, with the samples applied.
	KUBEBUILDER_ASSETS="$$(hack/envtest-binaries.sh)" go run ./cmd/sandbox

.PHONY: run-emulator
run-emulator: ## Serve the Surge API emulator on 127.0.0.1:8088.
	go run ./cmd/surge-emulator

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS)
$(CRD_REF_DOCS): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(CRD_REF_DOCS) github.com/elastic/crd-ref-docs

.PHONY: helm-docs
helm-docs: $(HELM_DOCS)
$(HELM_DOCS): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(HELM_DOCS) github.com/norwoodj/helm-docs/cmd/helm-docs

.PHONY: cosign
cosign: $(COSIGN)
$(COSIGN): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(COSIGN) github.com/sigstore/cosign/v2/cmd/cosign

.PHONY: crane
crane: $(CRANE)
$(CRANE): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(CRANE) github.com/google/go-containerregistry/cmd/crane

.PHONY: cyclonedx-gomod
cyclonedx-gomod: $(CYCLONEDX_GOMOD)
$(CYCLONEDX_GOMOD): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -o $(CYCLONEDX_GOMOD) github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod

.PHONY: helm
helm: $(HELM)
# helm's release builds stamp its version and the Kubernetes version it
# assumes offline (helm template, helm lint); a plain go build leaves them at old
# defaults, under which charts that need a recent Kubernetes do not render.
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)
HELM_LDFLAGS += $(foreach pkg,pkg/lint/rules pkg/chartutil,-X helm.sh/helm/v3/$(pkg).k8sVersionMajor=$(word 1,$(subst ., ,$(K8S_VERSION))) -X helm.sh/helm/v3/$(pkg).k8sVersionMinor=$(word 2,$(subst ., ,$(K8S_VERSION))))
$(HELM): $(TOOLS_MOD)
	mkdir -p $(LOCALBIN)
	cd tools && go build -ldflags "$(HELM_LDFLAGS)" -o $(HELM) helm.sh/helm/v3/cmd/helm

##@ Benchmark

BENCH_FLAGS ?=

.PHONY: bench
bench: envtest ## Benchmark the manager binary against a local API server and the Surge emulator; flags in BENCH_FLAGS (docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$$(hack/envtest-binaries.sh)" go run ./cmd/surge-bench $(BENCH_FLAGS)
