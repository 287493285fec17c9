#!/bin/sh
# `make bench`: the heap part builds every allocator configuration (bench/ and bench/peers/*,
# each in its own target directory), runs them interleaved, counts instructions under callgrind,
# prints the table and rewrites the figures section of BENCHMARKS.md; then the lock part
# (bench/locks.py, alone: bench/locks.sh) does the same for std::sync against mapprof::sync and
# rewrites the lock figures. See bench/run.py and bench/locks.py for the BENCH_* environment
# variables (BENCH_NO_LOCKS=1 skips the lock part). Needs: cargo, python3, valgrind.
set -eu
exec python3 "$(dirname "$0")/run.py" "$@"
