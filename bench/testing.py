#!/usr/bin/env python3
"""What `mapprof::testing::measure` costs (the testing part of `make bench`; bench/run.py calls it
after the CPU part, BENCH_NO_TESTING=1 skips it, bench/testing.sh runs it alone).

One binary, bench-mapprof-testing (bench/testing, a workspace of its own, bench/target-testing:
mapprof built with its `testing` feature, over jemalloc, the profiler started at its defaults),
runs the mixed workload of bench/workload (op = one allocation of 8 B-4 KiB and one free) in
three configurations, chosen by BENCH_SCOPE:
  mapprof-testing-bare    no scope anywhere: the baseline, the same loop in the same binary;
  mapprof-testing-inside  each workload thread's measured loop inside `measure`: every
                          allocation and free counted exactly, each allocation's stack walked;
  mapprof-testing-other   one more thread inside `measure` (blocked) for the whole run, the
                          workload threads outside any scope: their allocations keep the sampled
                          fast path, their frees see a scope active and take the cold path.
Figures: ns per op per thread (2 threads, wall time of the measured loop; median of the rounds,
min-max in brackets; the three configurations of a round run back to back, in an order rotated
each round) and instructions per op under callgrind (1 thread, only inside
`bench_measured_mixed`), with the share of the stack walk (`mapprof_rt::stack::capture`,
inclusive) for the scoped run.

Environment: the variables of bench/run.py, and BENCH_TESTING_ROUNDS=5,
BENCH_TESTING_OPS=8000000 operations per thread (the scoped configuration gets a tenth);
BENCH_QUICK=1: 2 rounds, a tenth of the work, figures not written. Rewrites the
`testing:begin` / `testing:end` section of BENCHMARKS.md.
"""

import os
import statistics
import subprocess
import sys
import time

from run import BENCH, JOBS, QUICK, RESULTS, count_instructions, log, machine, publish, run_once

BEGIN, END = "<!-- testing:begin -->", "<!-- testing:end -->"
ROUNDS = int(os.environ.get("BENCH_TESTING_ROUNDS", "2" if QUICK else "5"))
OPS = int(int(os.environ.get("BENCH_TESTING_OPS", "8000000")) * (0.1 if QUICK else 1.0))
CG_OPS = 20_000 if QUICK else 200_000
THREADS = 2
TARGET = "target-testing"

# run.py's configuration tuples: name, workspace, target dir, binary, environment, work divisor
CONFIGS = [
    (f"mapprof-testing-{mode}", "testing", TARGET, "bench-mapprof-testing",
     {"BENCH_SCOPE": mode}, divisor)
    for mode, divisor in (("bare", 1), ("inside", 10), ("other", 1))
]


def build():
    log(f"== cargo build --release -j{JOBS} in bench/testing (target bench/{TARGET})")
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BENCH, TARGET))
    subprocess.run(["cargo", "build", "--release", f"-j{JOBS}"],
                   cwd=os.path.join(BENCH, "testing"), env=env, check=True)


def ns_per_op(fields):
    # mops counts every thread's ops over the slowest thread's time: per thread, threads / mops.
    return 1000.0 * int(fields["threads"]) / float(fields["mops"])


def sanity(name, fields, check):
    c = dict(kv.split("=", 1) for kv in check.split() if "=" in kv)
    if name.endswith("inside") and int(c.get("counted", 0)) < int(fields["ops"]):
        raise SystemExit(f"{name}: the scopes counted fewer allocations than ops: {check}")
    if name.endswith("bare") and c.get("counted") != "0":
        raise SystemExit(f"{name}: a scope counted something: {check}")


def timed_rounds():
    runs = {c[0]: [] for c in CONFIGS}
    checks = {}
    for r in range(ROUNDS):
        k = r % len(CONFIGS)
        for cfg in CONFIGS[k:] + CONFIGS[:k]:
            fields, check = run_once(cfg, "mixed", THREADS, max(1000, OPS // cfg[5]))
            sanity(cfg[0], fields, check or "")
            checks.setdefault(cfg[0], check)
            runs[cfg[0]].append(ns_per_op(fields))
        log(f"   round {r + 1}/{ROUNDS}: "
            + ", ".join(f"{c[0]} {runs[c[0]][-1]:.1f} ns/op" for c in CONFIGS))
    return runs, checks


def stack_walk_ir(annotate):
    """Inclusive instructions of `mapprof_rt::stack::capture` in a callgrind_annotate listing."""
    for line in open(annotate):
        if "mapprof_rt::stack::capture" in line:
            return int(line.split()[0].replace(",", ""))
    return None


def callgrind():
    ir = {}
    for cfg in CONFIGS:
        name = cfg[0]
        ops = max(1000, CG_OPS // cfg[5])
        out = os.path.join(RESULTS, f"callgrind.{name}.out")
        total, (fields, _) = count_instructions(
            lambda prefix: run_once(cfg, "mixed", 1, ops, extra=["--no-check"], prefix=prefix),
            out)
        done = int(fields["ops"])
        walk = None
        if name.endswith("inside"):
            annotate = os.path.join(RESULTS, f"annotate.{name}.txt")
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                                 capture_output=True, text=True)
            open(annotate, "w").write(ann.stdout)
            walk = stack_walk_ir(annotate)
        ir[name] = (total / done, done, walk / done if walk else None)
        log(f"   callgrind {name}: {total / done:.1f} Ir/op over {done} ops")
    return ir


def report(runs, ir, checks, mach, elapsed):
    bare = statistics.median(runs["mapprof-testing-bare"])
    lines = [
        f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['nproc']} CPUs "
        f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}; load average at start "
        f"{mach['load']}. {ROUNDS} rounds, {THREADS} threads, {OPS:,} ops per thread "
        f"({OPS // 10:,} inside scopes); whole run {elapsed / 60:.1f} min.",
        "",
        "| config | ns/op median | [min–max] | Δ vs bare | Ir/op | Δ Ir vs bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cfg in CONFIGS:
        n = cfg[0]
        med = statistics.median(runs[n])
        if ir:
            iro = ir[n][0]
            irs, dir_ = f"{iro:,.1f}", f"{iro - ir['mapprof-testing-bare'][0]:+,.1f}"
        else:
            irs = dir_ = "—"
        lines.append(f"| {n} | {med:.1f} | [{min(runs[n]):.1f}–{max(runs[n]):.1f}] | "
                     f"{med - bare:+.1f} | {irs} | {dir_} |")
    lines.append("")
    inside = ir.get("mapprof-testing-inside")
    if inside and inside[2]:
        lines.append(f"Stack walk inside the scope (`mapprof_rt::stack::capture`, inclusive): "
                     f"{inside[2]:,.1f} Ir per op of {inside[0]:,.1f}.")
        lines.append("")
    if ir:
        lines.append(f"Callgrind: 1 thread, {CG_OPS:,} ops ({CG_OPS // 10:,} inside the "
                     f"scope), counted only inside `bench_measured_mixed`.")
        lines.append("")
    lines.append("Sanity checks printed by the binary after its first run:")
    lines.append("")
    for cfg in CONFIGS:
        lines.append(f"- {cfg[0]}: `{checks.get(cfg[0])}`")
    return "\n".join(lines)


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    log(f"== testing: {ROUNDS} rounds x {len(CONFIGS)} configs, mixed, {THREADS} threads")
    runs, checks = timed_rounds()
    ir = {}
    if os.environ.get("BENCH_NO_CALLGRIND") != "1":
        ir = callgrind()
    figures = report(runs, ir, checks, mach, time.time() - t0)
    publish(figures, "testing.md", BEGIN, END, "bench/testing.py", "testing figures")


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
