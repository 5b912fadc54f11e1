# Pisanix-Go. `make run` starts a demo; `make test` installs what tests need and runs them all.
GO        ?= go
CACHE     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pisanix
BIN       := bin
TEST_TAGS := faultinject
export PISANIX_CACHE := $(CACHE)

.PHONY: all build run test deps lint vet unit generate bench clean conformance images

all: build

# The version the binaries print (pisa-proxy --version) and the bench
# harness records: the commit, "-dirty" when the tree has changes.
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The full commit, stamped beside the version (GOFLAGS=-buildvcs=false
# keeps Go from recording it) and put in the images' labels.
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# One OCI image per program (pisa-proxy, pisa-controller, pisa-daemon) in
# $(BIN)/images/<name>.tar (an OCI archive: podman load -i, docker load -i,
# ctr images import), from static binaries (CGO_ENABLED=0, -trimpath, the
# same version and commit stamp) on an empty base with CA certificates and
# /etc/passwd; no base image is pulled. See internal/imagebuild.
IMAGE_TAG    ?= latest
IMAGE_REPO   ?= pisanix
IMAGE_SOURCE ?= $(or $(shell git config --get remote.origin.url 2>/dev/null),https://pisanix.io/pisanix)
images:
	$(GO) run ./internal/imagebuild/cmd/imagebuild -out $(BIN)/images -repo $(IMAGE_REPO) -tag $(IMAGE_TAG) \
		-version $(VERSION) -commit $(COMMIT) -source $(IMAGE_SOURCE) \
		-created $(or $(shell git log -1 --format=%cI 2>/dev/null),1970-01-01T00:00:00Z)

deps:
	./scripts/deps.sh

vet:
	$(GO) vet -tags $(TEST_TAGS) ./...

lint: vet
	$(CACHE)/bin/staticcheck -tags $(TEST_TAGS) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Every test, with real MariaDB servers, a real kube-apiserver and network namespaces.
test: deps lint
	$(GO) test -tags $(TEST_TAGS) -count=1 -timeout 40m ./...
	FUZZTIME=10000x GO=$(GO) TAGS=$(TEST_TAGS) ./scripts/fuzz.sh
	$(GO) test -tags $(TEST_TAGS) -race -count=1 -timeout 20m $(RACE_SKIP) $(RACE_PKGS)
	@mkdir -p $(BIN)
	$(GO) run ./conformance/cmd/conformance -go $(GO) $(SHORT_CONFORMANCE) -out $(BIN)/conformance.md
	$(GO) run ./conformance/cmd/conformance -go $(GO) $(SHORT_CONFORMANCE),conformance/known-differences-multiplex.txt -multiplex -out $(BIN)/conformance-multiplex.md
	$(GO) run ./conformance/cmd/conformance -go $(GO) $(SHORT_CONFORMANCE_LIST) -strict -known conformance/known-differences-passthrough.txt -passthrough -out $(BIN)/conformance-passthrough.md

# make test's conformance: every suite, mysqltest on its short list, strict.
SHORT_CONFORMANCE_LIST := -mysqltest-list conformance/mysqltest-short.list
SHORT_CONFORMANCE := $(SHORT_CONFORMANCE_LIST) -strict -known conformance/known-differences.txt

# make test's -race run: the data path. TestParseBudget counts on its
# statements running faster than the parse budget refills, which the race
# detector's slowdown breaks.
RACE_PKGS := ./wire ./session ./backend ./sqlinfo ./strategy ./actors ./supervisor
RACE_SKIP := -skip '^TestParseBudget$$'

# Every fuzz target (func FuzzXxx, found by scripts/fuzz.sh with go test
# -list), FUZZTIME each, one after the other. make test runs 10,000
# executions of each (a count, not a time: a -fuzztime that ends while an
# input is running fails with "context deadline exceeded", no crash behind it).
# Crashing inputs land in the package's testdata/fuzz/. See docs/security.md.
.PHONY: fuzz
FUZZTIME ?= 10m
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) TAGS=$(TEST_TAGS) ./scripts/fuzz.sh

# go-sql-driver's and go-mysql's own test suites and MariaDB's mysqltest
# (conformance/mysqltest.list, text and binary protocol) against throwaway
# MariaDBs, directly and through pisa-proxy; report in bin/conformance.md
# (docs/conformance.md). CONFORMANCE_FLAGS=-tls also offers TLS; -strict
# fails on differences. `make test` runs it on mysqltest-short.list with
# -strict against conformance/known-differences.txt.
conformance: deps
	@mkdir -p $(BIN)
	$(GO) run ./conformance/cmd/conformance -go $(GO) -out $(BIN)/conformance.md $(CONFORMANCE_FLAGS)

run: build
	./scripts/run-demo.sh

# Regenerates the committed BPF objects and bindings (needs clang; installed when missing).
generate:
	@command -v clang >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm libbpf-dev; }
	$(GO) generate ./...

bench: build
	./bench/run.sh

clean:
	rm -rf $(BIN)
