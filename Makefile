# connectd — exactly-once Kafka connector daemon.
#
#   make run     build and run the quickstart on the embedded broker
#   make test    start the test services (Kafka, PostgreSQL, Redis, dockerd),
#                build the test images, then run every test
#   make build   write bin/connectd
#   make short   the fast loop: unit and in-process kfake tests, no services
#   make lint    gofmt and go vet
#   make bench   the benchmark harness (bench/, issue 9) on the test services;
#                BENCH_FLAGS passes flags, e.g. BENCH_FLAGS=-full. Not part of test.
# Service targets (services, services-stop, images, kafka-cluster, ...) are in
# test/services.mk.

GO       ?= go
BIN      := bin/connectd
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The whole suite, kfake fault suites included, stays well inside CI's 90 minutes.
TEST_TIMEOUT ?= 45m

.DEFAULT_GOAL := build
include test/services.mk

.PHONY: build run test short lint clean bench

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/connectd

run: build
	./$(BIN) run -c configs/quickstart.yaml

test: services images lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Writes bench/results/<date>-<commit>.md and .png and prints the summary;
# the harness builds the Kafka Streams peer with Maven itself.
BENCH_FLAGS ?=
bench: build services
	$(GO) build -o bin/connectd-bench ./bench/cmd/connectd-bench
	./bin/connectd-bench -connectd $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf bin data
