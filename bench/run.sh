#!/bin/sh
# The heap part of `make bench`: builds every allocator configuration (bench/ and bench/peers/*,
# each in its own target directory), runs them interleaved, counts instructions under callgrind,
# prints the table and rewrites the figures section of BENCHMARKS.md. See bench/run.py for the
# BENCH_* environment variables. Needs: cargo, python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/run.py" "$@"
