# mapprof: `make flame` profiles the demo and renders flame graphs; `make test` runs the tests.
# Both install what they need first (Go's `go tool pprof`, valgrind for benchmarks).

CARGO ?= cargo
OUT   ?= flamegraphs
BIN   := target/release

# Root installs system packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT  := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: setup setup-bench test flame bench lint

## setup: install Go (for `go tool pprof`, used by tests and to open profiles)
setup:
	@command -v go >/dev/null 2>&1 || { \
	  echo "==> installing Go (golang-go) for go tool pprof"; \
	  $(APT) update -qq && $(APT) install -y -qq golang-go >/dev/null; }
	@go version

## setup-bench: also valgrind (instruction counts) and python3 (the bench driver)
setup-bench: setup
	@command -v valgrind >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 || { \
	  echo "==> installing valgrind and python3"; \
	  $(APT) update -qq && $(APT) install -y -qq valgrind python3 >/dev/null; }

## test: every test of the workspace
test: setup
	$(CARGO) test --workspace

## flame: profile the demo program and render its profiles into $(OUT)/
flame: setup
	@echo "==> building the demo and the mapprof CLI (release)"
	$(CARGO) build --release -p mapprof --example demo
	$(CARGO) build --release -p mapprof-cli
	@mkdir -p $(OUT)
	@echo "==> running the demo under mapprof"
	$(BIN)/examples/demo $(OUT)
	@echo "==> rendering flame graphs"
	$(BIN)/mapprof flame $(OUT)/demo-heap.pb.gz --sample-index inuse_space -o $(OUT)/demo-heap-inuse_space.svg
	$(BIN)/mapprof flame $(OUT)/demo-allocs.pb.gz --sample-index alloc_space -o $(OUT)/demo-allocs-alloc_space.svg
	$(BIN)/mapprof flame $(OUT)/demo-mutex.pb.gz --sample-index delay -o $(OUT)/demo-mutex-delay.svg
	$(BIN)/mapprof flame $(OUT)/demo-block.pb.gz --sample-index delay -o $(OUT)/demo-block-delay.svg
	@echo "==> where the bytes were allocated (mapprof top, alloc_space)"
	@$(BIN)/mapprof top $(OUT)/demo-allocs.pb.gz --sample-index alloc_space -n 5
	@echo "==> who held the lock others waited for (mapprof top, mutex delay)"
	@$(BIN)/mapprof top $(OUT)/demo-mutex.pb.gz -n 5
	@echo "==> who waited for it (mapprof top, block delay)"
	@$(BIN)/mapprof top $(OUT)/demo-block.pb.gz -n 5
	@echo
	@echo "Open $(OUT)/demo-allocs-alloc_space.svg and $(OUT)/demo-mutex-delay.svg in a browser, or run:"
	@echo "  go tool pprof -http=: $(OUT)/demo-mutex.pb.gz"

## bench: allocator overhead against bare jemalloc and the peer profilers; lock shim against std
bench: setup-bench
	bash bench/run.sh

## lint: formatting and clippy, as the CI of a careful project would
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
