# chronoshub-sidecar. `make test` is the whole test suite (what CI runs);
# it installs what it needs through the Go module proxy.
GO          ?= go
TOOLS       := $(GO) tool -modfile=tools/go.mod
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all generate generate-examples lint check-generated breaking test examples-test fuzz build run bench image debian-packages cross

all: build

## generate: regenerate gen/ from proto/ (offline: plugins are pinned in tools/go.mod)
generate:
	$(TOOLS) buf generate

## generate-examples: regenerate the stubs of examples/python and examples/node
## (needs Debian's protobuf-compiler and protobuf-compiler-grpc, and npm;
## examples/run-tests.sh installs them)
generate-examples:
	cd examples/node && npm ci --no-audit --no-fund
	$(TOOLS) buf generate --template examples/python/buf.gen.yaml
	$(TOOLS) buf generate --template examples/node/buf.gen.yaml

## lint: buf lint (STANDARD), go vet, staticcheck
lint:
	$(TOOLS) buf lint
	$(GO) vet ./...
	$(STATICCHECK) ./...

## check-generated: fail if gen/ is stale
check-generated: generate
	git diff --exit-code -- gen
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has untracked files: run make generate and commit"; exit 1; }

## breaking: buf breaking against main, once main has the proto
breaking:
	@if git rev-parse -q --verify origin/main >/dev/null && git cat-file -e origin/main:proto/chronoshub/sidecar/v1/sidecar.proto 2>/dev/null; then \
		$(TOOLS) buf breaking --against '.git#branch=origin/main'; \
	else echo "breaking: origin/main has no proto yet, skipped"; fi

## test: everything CI checks
test: lint check-generated breaking debian-packages image cross
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz
	$(MAKE) examples-test

## cross: the commands build for macOS too (a partner's laptop runs `dev`);
## the image and the pod are Linux, and Windows is not supported
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./sidecar/cmd/...
	GOOS=darwin GOARCH=amd64 $(GO) build -o /dev/null ./sidecar/cmd/...

## examples-test: every example (Go, Python, TypeScript, curl, Kubernetes
## manifests) end to end against the dev playground; installs what they need
examples-test:
	bash examples/run-tests.sh

# Fuzz targets of the parsers of hostile input, each for FUZZTIME, on top of
# their committed corpora (testdata/fuzz), which plain `go test` replays.
# FUZZTIME is a count of inputs, not a duration: with a duration, go1.26's
# fuzzing coordinator can fail a target with "context deadline exceeded" at
# the deadline though no input failed (go.dev/issue/75804, fixed in
# go1.27); seen in this project's CI on FuzzParseHeader. A longer hunt:
# make fuzz FUZZTIME=1000000x.
FUZZTIME ?= 30000x
FUZZ_TARGETS := \
	FuzzHandler:./sidecar/internal/webhook \
	FuzzSendEventBody:./sidecar/internal/gateway \
	FuzzAckEventsBody:./sidecar/internal/gateway \
	FuzzVerify:./sidecar/internal/signature \
	FuzzParseHeader:./sidecar/internal/signature \
	FuzzEventType:./sidecar/internal/eventtype \
	FuzzParseListenAddr:./sidecar/internal/config \
	FuzzParseSubscriptions:./sidecar/internal/config \
	FuzzParseCursor:./sidecar/internal/eventlog \
	FuzzSplitValues:./sidecar/internal/credentials \
	FuzzRedact:./sidecar/internal/natsconn

## fuzz: run every fuzz target for FUZZTIME inputs (30000x)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "fuzz $$name $$pkg ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Debian packages the tests need besides Go, Node and gcc: ca-certificates
# (the image's CA bundle, its version in the SBOM) and prometheus (promtool:
# go test checks and unit-tests the alerting rules in
# examples/kubernetes/alerts and checks /metrics with it). Installed when
# missing, as root or with sudo -n.
DEBIAN_PACKAGES := ca-certificates prometheus

## debian-packages: install what DEBIAN_PACKAGES lists and is missing
debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
		echo "apt-get install" $$missing; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## image: the container image in bin/image/ with no Docker daemon: an OCI
## layout (with its SBOM as a referrer), a docker-load tarball, the CycloneDX
## SBOM and the digest (docs/image.md); needs Debian's ca-certificates
image:
	$(GO) run ./sidecar/cmd/chronoshub-image -out bin/image

## build: the binary, bin/chronoshub-sidecar (static, stripped)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/chronoshub-sidecar ./sidecar/cmd/chronoshub-sidecar

## run: the dev playground (sidecar + in-process ChronosHub emulator, no configuration)
run:
	$(GO) run ./sidecar/cmd/chronoshub-sidecar dev

## bench: package benchmarks, then the sidecar against its baselines in the
## same run (writes docs/benchmarks.md and docs/benchmarks-*.svg), about 12
## minutes with the scale curve to 1,000,000 events in the log; a smoke run:
## go run ./sidecar/cmd/chronoshub-bench -quick -out /tmp/bench
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./sidecar/...
	$(GO) run ./sidecar/cmd/chronoshub-bench -out docs
