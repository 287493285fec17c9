#!/bin/sh
# The testing part of `make bench` alone (bench/run.sh runs it after the earlier parts): what
# `mapprof::testing::measure` costs, inside a scope and beside one; see bench/testing.py for
# what it measures and its BENCH_* environment variables. Needs: cargo, python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/testing.py" "$@"
