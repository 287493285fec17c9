#!/bin/sh
# The scrape part of `make bench` alone (bench/run.sh runs it after the service part): times
# scrapes of /debug/pprof/heap holding 10,000 distinct live heap stacks and the memory they take,
# prints the table and rewrites the scrape figures of BENCHMARKS.md. See bench/scrape.py for the
# BENCH_* environment variables. Needs: cargo, python3.
set -eu
exec python3 "$(dirname "$0")/scrape.py" "$@"
