#!/bin/sh
# The service part of `make bench` alone (bench/run.sh runs it after the lock part): builds the
# incident's cache service (fixtures/cache-service) without and with its `profiling` feature,
# serves each mode with each build in turn under the same HTTP load, prints the table and
# rewrites the service figures of BENCHMARKS.md. See bench/service.py for the BENCH_* environment
# variables. Needs: cargo, python3.
set -eu
exec python3 "$(dirname "$0")/service.py" "$@"
