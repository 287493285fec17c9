# mapprof: `make flame` reproduces the incident and points at the function to fix; `make test`
# runs the tests.
# Both install what they need first (Go's `go tool pprof`, valgrind for benchmarks).

CARGO ?= cargo
OUT   ?= flamegraphs
BIN   := target/release

# Root installs system packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT  := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: setup setup-bench receivers test flame bench lint msrv

## setup: install Go (for `go tool pprof`, used by tests and to open profiles) and graphviz
## (`dot`, which draws the graph of `go tool pprof -http`)
setup:
	@command -v go >/dev/null 2>&1 || { \
	  echo "==> installing Go (golang-go) for go tool pprof"; \
	  $(APT) update -qq && $(APT) install -y -qq golang-go >/dev/null; }
	@go version
	@command -v dot >/dev/null 2>&1 || { \
	  echo "==> installing graphviz for the graph view of go tool pprof -http"; \
	  $(APT) update -qq && $(APT) install -y -qq graphviz >/dev/null; }
	@dot -V

## setup-bench: also valgrind (instruction counts) and python3 (the bench driver)
setup-bench: setup receivers
	@command -v valgrind >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 || { \
	  echo "==> installing valgrind and python3"; \
	  $(APT) update -qq && $(APT) install -y -qq valgrind python3 >/dev/null; }

## receivers: the Python venv of the push tests' loopback engines (crates/mapprof/tests/receivers:
## Pyroscope's push.proto compiled by grpcio-tools, OTLP through PyPI's opentelemetry-proto)
RECEIVERS := crates/mapprof/tests/receivers
VENV      := target/receivers-venv
receivers: $(VENV)/.installed
$(VENV)/.installed: $(RECEIVERS)/requirements.txt
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "==> installing python3 and python3-venv for the push tests' receivers"; \
	  $(APT) update -qq && $(APT) install -y -qq python3 python3-venv >/dev/null; }
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r $(RECEIVERS)/requirements.txt
	touch $@

## test: every test of the workspace; the cache service with its profiler (the incident's
## profiles) and without it (std locks, bare jemalloc: the build it is compared with)
test: setup receivers
	$(CARGO) test --workspace --features cache-service/testing
	$(CARGO) test -p cache-service
	$(CARGO) test -p mapprof --features push,otlp --lib $(PUSH_TESTS)
	$(CARGO) test -p mapprof-profile --features otlp --test otlp_requests_carry_their_pprof_profiles

# The push tests run in builds of their own: pushing links ureq and rustls (ring), and the
# other test binaries stay as a service without push builds them (go tool pprof's offline
# symbolization of a test binary that links ring leaves `alloc::alloc::alloc` unnamed).
PUSH_TESTS := --test pushed_profiles_reach_pyroscope --test pushing_survives_a_failing_engine \
  --test pushed_profiles_reach_an_otlp_collector

## flame: reproduce the incident (fixtures/cache-service), profile both modes, render into $(OUT)/
## FLAME_ARGS passes load settings, e.g. FLAME_ARGS="--duration=30s --connections=32".
FLAME_ARGS ?=
flame: setup
	@echo "==> building the cache service with profiling, and the mapprof CLI (release)"
	$(CARGO) build --release -p cache-service -p mapprof-cli --features cache-service/profiling
	$(BIN)/cache-service incident --out $(OUT) $(FLAME_ARGS)

## bench: allocator overhead against bare jemalloc and the peer profilers; lock shim against std;
## the incident's service built with profiling against the same service without
bench: setup-bench
	bash bench/run.sh

## lint: formatting and clippy with warnings denied, over the workspace (with and without its
## optional features) and the benchmarks' workspaces, and `cargo check` of mapprof with no
## default features and with each feature alone (features are additive: each must build by
## itself); CI runs it after the tests
MAPPROF_FEATURES := jemalloc http tokio tracing testing push otlp
lint:
	$(CARGO) fmt --all -- --check
	cd bench && $(CARGO) fmt --all -- --check
	for peer in bench/peers/*/; do (cd $$peer && $(CARGO) fmt --all -- --check) || exit 1; done
	$(CARGO) clippy --workspace --all-targets --features cache-service/testing -- -D warnings
	$(CARGO) clippy -p mapprof --no-default-features --all-targets -- -D warnings
	$(CARGO) clippy -p mapprof -p mapprof-profile --features mapprof/push,mapprof/otlp --all-targets -- -D warnings
	$(CARGO) check -p mapprof --no-default-features
	for f in $(MAPPROF_FEATURES); do \
	  $(CARGO) check -p mapprof --no-default-features --features $$f || exit 1; done
	cd bench && $(CARGO) clippy --workspace --all-targets -- -D warnings

## msrv: check the workspace with the Rust it declares as its minimum (`rust-version`, 1.88)
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
msrv:
	rustup toolchain install $(MSRV) --profile minimal
	$(CARGO) +$(MSRV) check --workspace --all-targets --features cache-service/profiling
