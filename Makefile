# The two commands of the README, and a few helpers. `make help` lists them.
SHELL := /bin/bash
JOBS ?= 2
RUN_DIR := $(CURDIR)/.run
PG_PORT ?= 54329
REDIS_PORT ?= 63799
SMTP_PORT ?= 2525
# Not make's "Entering directory" lines of the builds it runs.
MAKEFLAGS += --no-print-directory

.PHONY: help deps build build-asan build-server run test test-release test-asan test-cluster cluster cluster-stop fuzz bench bench-quick bench-jobs bench-attack stop clean format format-check

help:
	@echo "make run          install packages, build, start private PostgreSQL/Redis, migrate, serve :8443 and :8080"
	@echo "make test         everything: unit and integration tests, Release and ASan+UBSan builds; cluster tests (Release)"
	@echo "make test-cluster the cluster tests: HAProxy, 3 instances, 2 workers, restarts and kills"
	@echo "make cluster      HAProxy + 3 API instances + 2 workers on loopback (.run/cluster); make cluster-stop"
	@echo "make build        Release build in build/"
	@echo "make build-asan   Debug + AddressSanitizer + UBSan build in build-asan/"
	@echo "make fuzz         every libFuzzer target for FUZZ_SECONDS (60) each; FUZZ_TARGETS=\"http_json ...\" for some"
	@echo "make bench        every benchmark scenario (bench/run); make bench-quick for a short pass"
	@echo "make bench-jobs   job queue benchmark (throughput, idle start delay)"
	@echo "make bench-attack HTTP/2 attacks against hydrant and bare libh2o (bench/attack/run)"
	@echo "make stop         stop make run's server, then the private services"
	@echo "make format       clang-format the C sources"
	@echo "make clean        remove builds (keeps .run/)"

deps:
	@bash scripts/deps.sh run test

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHYDRANT_TESTS=ON >/dev/null
	cmake --build build -j$(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHYDRANT_SANITIZE=ON -DHYDRANT_TESTS=ON >/dev/null
	cmake --build build-asan -j$(JOBS)

# The server alone, for make run: no test or bench targets, no test packages; the compiler's
# output only when it fails.
build-server:
	@bash scripts/deps.sh run
	@mkdir -p $(RUN_DIR)
	@echo "hydrant: building ./build/hydrant (log: .run/build.log)"
	@{ cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHYDRANT_TESTS=OFF && \
	   cmake --build build -j$(JOBS) --target hydrant; } >$(RUN_DIR)/build.log 2>&1 || \
	  { tail -n 40 $(RUN_DIR)/build.log; exit 1; }

# Private services only when no URL is configured; a development certificate and secret
# only when none is given. The server's pid goes to .run/hydrant.pid for make stop.
run: build-server
	@if [ -z "$$HYDRANT_DATABASE_URL" ] || [ -z "$$HYDRANT_REDIS_URL" ]; then \
	  bash scripts/services.sh start $(RUN_DIR)/services $(PG_PORT) $(REDIS_PORT) $(SMTP_PORT); fi
	@[ -n "$$HYDRANT_TLS_CERT" ] || bash scripts/dev-cert.sh $(RUN_DIR)/tls
	@bash scripts/dev-secret.sh $(RUN_DIR)/jwt-secret
	@export HYDRANT_JWT_SECRET="$${HYDRANT_JWT_SECRET:-$$(cat $(RUN_DIR)/jwt-secret)}"; \
	  ./build/hydrant migrate up && \
	  echo "hydrant: https://localhost:8443 (HTTP/2, HTTP/1.1) and http://localhost:8080; Ctrl-C stops the server, 'make stop' the server and the services" && \
	  echo $$$$ >$(RUN_DIR)/hydrant.pid && exec ./build/hydrant serve

test: deps test-release test-asan

test-release: build
	ctest --test-dir build --output-on-failure

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan --output-on-failure

# The cluster tests alone (tests/cluster; make test-release runs them too).
test-cluster: build
	ctest --test-dir build --output-on-failure -L cluster

# The production topology natively (scripts/cluster.sh): HAProxy in both modes of deploy/haproxy,
# 3 API instances and 2 workers over private services, every port free; state in .run/cluster.
cluster: build-server
	@bash scripts/deps.sh cluster
	@bash scripts/cluster.sh start $(RUN_DIR)/cluster

cluster-stop:
	@bash scripts/cluster.sh stop $(RUN_DIR)/cluster

# Every libFuzzer target (tests/fuzz) for FUZZ_SECONDS each, one after the other, built with
# clang in build-fuzz/ (scripts/fuzz.sh); FUZZ_TARGETS names some (http_json, server_range, ...).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Every benchmark scenario (bench/run); bench-quick is a short pass.
bench:
	bash bench/run

bench-quick:
	bash bench/run --quick

# Job queue throughput and idle start delay on a private PostgreSQL (see bench/jobs/run).
bench-jobs:
	bash bench/jobs/run

# HTTP/2 attacks (Rapid Reset, MadeYouReset, floods...) with a legitimate client measuring
# what is left of its throughput and latency (see bench/attack/README.md).
bench-attack:
	bench/attack/run

# make run's server first (SIGTERM: it drains, then exits), then the services.
stop:
	@pid=$$(cat $(RUN_DIR)/hydrant.pid 2>/dev/null || true); \
	if [ -n "$$pid" ] && grep -qa hydrant /proc/$$pid/cmdline 2>/dev/null; then \
	  echo "stopping the server (pid $$pid)"; kill -TERM $$pid; \
	  for i in $$(seq 1 300); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	fi; rm -f $(RUN_DIR)/hydrant.pid
	@bash scripts/services.sh stop $(RUN_DIR)/services

clean:
	rm -rf build build-asan build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')
