#!/bin/sh
# The footprint part of `make bench` alone (bench/run.sh runs it after the earlier parts); see
# bench/footprint.py for what it measures and its BENCH_* environment variables. Needs: cargo,
# python3.
set -eu
exec python3 "$(dirname "$0")/footprint.py" "$@"
