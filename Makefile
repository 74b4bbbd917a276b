# Strata's build, test and benchmark entry points.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
BIN := bin/strata
export CGO_ENABLED ?= 0

.PHONY: all build deps demo test lint unit bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/strata

deps:
	./scripts/deps test
	$(GO) mod download

demo: build
	./scripts/deps
	./scripts/demo $(BIN)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# -race needs cgo; the node binary itself is built with CGO_ENABLED=0.
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 40m ./...

test: deps lint unit

bench: build
	./scripts/deps test
	CGO_ENABLED=0 $(GO) run ./cmd/strata-bench -strata $(BIN) -out docs/benchmarks.md

fuzz:
	./scripts/fuzz

clean:
	rm -rf bin
