#!/bin/sh
# The cpu part of `make bench` alone (bench/run.sh runs it after the earlier parts); see
# bench/cpu.py for what it measures and its BENCH_* environment variables. Needs: cargo,
# python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/cpu.py" "$@"
