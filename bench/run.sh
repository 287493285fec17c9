#!/bin/sh
# `make bench`: the heap part builds every allocator configuration (bench/ and bench/peers/*,
# each in its own target directory), runs them interleaved, counts instructions under callgrind,
# prints the table and rewrites the figures section of BENCHMARKS.md; then the lock part
# (bench/locks.py, alone: bench/locks.sh) does the same for std::sync against mapprof::sync and
# rewrites the lock figures; then the service part (bench/service.py, alone: bench/service.sh)
# serves the incident's cache service built with and without mapprof under the same HTTP load and
# rewrites the service figures. See bench/run.py, bench/locks.py and bench/service.py for the
# BENCH_* environment variables (BENCH_NO_LOCKS=1 skips the lock part, BENCH_NO_SERVICE=1 the
# service part). Then the scrape part (bench/scrape.py, BENCH_NO_SCRAPE=1), the footprint part
# (bench/footprint.py, BENCH_NO_FOOTPRINT=1: the service's VmRSS and RssAnon, bare against
# profiled, around scrapes and CPU profiles) and the CPU part (bench/cpu.py, BENCH_NO_CPU=1: the
# CPU sampler's cost per sample and memory against pprof-rs's) and the testing part
# (bench/testing.py, BENCH_NO_TESTING=1: what `mapprof::testing::measure` costs per allocation,
# inside a scope and beside one), each rewriting its figures.
# Needs: cargo, python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/run.py" "$@"
