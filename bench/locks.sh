#!/bin/sh
# The lock part of `make bench` alone (bench/run.sh runs it after the heap part): builds
# bench/locks (std::sync and mapprof::sync binaries), runs them interleaved, counts instructions
# of the uncontended paths under callgrind, prints the table and rewrites the lock figures of
# BENCHMARKS.md. See bench/locks.py for the BENCH_* environment variables.
# Needs: cargo, python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/locks.py" "$@"
