#!/usr/bin/env python3
"""mapprof's lock benchmark driver (the lock part of `make bench`; bench/run.py calls it after
the heap part, or run it alone with bench/locks.sh). Same method as the heap part: two binaries
built from one source (bench/locks: `bench-locks-std` with std::sync, `bench-locks-mapprof` with
mapprof::sync and the profiler running at its default lock sampling), run interleaved over
several rounds, medians and min-max, differences and ratios, callgrind instructions per
operation for the uncontended paths. Prints a table and rewrites the lock figures of
BENCHMARKS.md (between its `locks:begin` / `locks:end` markers). The async part does the same for
tokio::sync::Mutex against mapprof::tokio::Mutex (the same binaries, workloads `async-*`) and
rewrites the figures between `async-locks:begin` / `async-locks:end`.

Environment (all optional; the same variables as bench/run.py):
  BENCH_ROUNDS=7          timed rounds of the heap part; the lock part runs twice as many (its
                          runs are short and the contended ones spread widely)
  BENCH_LOCK_ROUNDS=14    timed rounds of the lock part (default: 2 x BENCH_ROUNDS)
  BENCH_QUICK=1           3 rounds and a tenth of the work (a smoke test; figures not written)
  BENCH_NO_CALLGRIND=1    skip the callgrind part
  BENCH_NO_BUILD=1        use the binaries already built
  BENCH_NO_WRITE=1        do not touch BENCHMARKS.md
  BENCH_JOBS=2            cargo -j
  BENCH_LOCK_PARTS=sync,async  which parts run (and which sections are rewritten)
"""

import os
import re
import statistics
import subprocess
import sys
import time

from run import (BENCH, JOBS, QUICK, RESULTS, SCALE, count_instructions, log, machine,
                 replace_section)
from run import ROUNDS as HEAP_ROUNDS

ROUNDS = int(os.environ.get("BENCH_LOCK_ROUNDS", 2 * HEAP_ROUNDS))

BEGIN, END = "<!-- locks:begin -->", "<!-- locks:end -->"
ASYNC_BEGIN, ASYNC_END = "<!-- async-locks:begin -->", "<!-- async-locks:end -->"
PARTS = os.environ.get("BENCH_LOCK_PARTS", "sync,async").split(",")

# name, binary (both in the bench workspace, target bench/target)
CONFIGS = [("std", "bench-locks-std"), ("mapprof", "bench-locks-mapprof")]
# (workload, threads, operations per thread): uncontended 1-thread paths (about 0.3 s a run),
# then one Mutex shared by 2, 4 and 8 threads, 10M lock+unlock pairs in all whatever the count
# (mapprof takes up to ~2 s for them at 8 threads here).
UNCONTENDED = [("mutex", 1, 40_000_000), ("rwread", 1, 40_000_000), ("rwwrite", 1, 40_000_000),
               ("labels", 1, 20_000_000), ("labels-trace", 1, 20_000_000)]
CONTENDED = [("contended", t, 10_000_000 // t) for t in (2, 4, 8)]
# The async part: an uncontended `lock().await` (no runtime: the future polled once), then N
# tasks on one current-thread runtime, each holding the lock across a yield (every acquisition
# but the first contended), 1M pairs in all.
# Then what task labels add to a poll and the tracing layer to a span (1 thread).
ASYNC_UNCONTENDED = [("async-mutex", 1, 20_000_000)]
TASK_LABELS = [("task-labels", 1, 20_000_000), ("span-enter", 1, 10_000_000),
               ("span-request", 1, 2_000_000)]
ASYNC_CONTENDED = [("async-contended", t, 1_000_000 // t) for t in (2, 8)]
if "sync" not in PARTS:
    UNCONTENDED, CONTENDED = [], []
if "async" in PARTS:
    UNCONTENDED = UNCONTENDED + ASYNC_UNCONTENDED + TASK_LABELS
    CONTENDED = CONTENDED + ASYNC_CONTENDED
RUNS = UNCONTENDED + CONTENDED
CG_OPS = 1_000_000

TITLE = {"mutex": "Mutex lock + unlock", "rwread": "RwLock read + unlock",
         "rwwrite": "RwLock write + unlock",
         "labels": "label guard `route`", "labels-trace": "label guard `trace_id` + `route`",
         "async-mutex": "async Mutex `lock().await` + unlock",
         "task-labels": "one poll of a future with task labels `trace_id` + `route`",
         "span-enter": "span enter + exit, fields `trace_id` + `route`",
         "span-request": "a request's span: made (new trace id), entered, exited, dropped"}


def binary(exe):
    return os.path.join(BENCH, "target", "release", exe)


def build():
    log(f"== cargo build --release -j{JOBS} -p bench-locks in bench/ (target bench/target)")
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BENCH, "target"))
    subprocess.run(["cargo", "build", "--release", f"-j{JOBS}", "-p", "bench-locks"],
                   cwd=BENCH, env=env, check=True)


RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)
CHECK_RE = re.compile(r"^CHECK config=\S+ (.*)$", re.M)


def run_once(cfg, workload, threads, ops, extra=(), prefix=()):
    name, exe = cfg
    cmd = list(prefix) + [binary(exe), workload, str(threads), str(ops)] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{name} {workload} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    m = RESULT_RE.search(p.stdout)
    if not m:
        raise SystemExit(f"{name} {workload}: no RESULT line:\n{p.stdout}\n{p.stderr}")
    fields = dict(kv.split("=", 1) for kv in m.group(1).split())
    c = CHECK_RE.search(p.stdout)
    return fields, (c.group(1) if c else "")


def parse_check(check):
    return dict(kv.split("=", 1) for kv in check.split() if "=" in kv)


def sanity(name, workload, check):
    """Fails loudly when a configuration did not profile the way it claims to."""
    c = parse_check(check)
    bad = None
    if name == "std" and check != "no profiler":
        bad = "the std binary should run no profiler"
    if name == "mapprof":
        if c.get("mutex_fraction") != "10" or c.get("block_rate") != "10000":
            bad = "mapprof is not at its default lock sampling (mutex_fraction 10, block_rate 10000)"
        elif not workload.endswith("contended") and (c.get("mutex_samples") != "0"
                                          or c.get("block_samples") != "0"):
            bad = "an uncontended run took the contended path"
        elif c.get("label_overflow") != "0":
            bad = "label guards overflowed the thread's label buffer (a guard not restored?)"
    if bad:
        raise SystemExit(f"{name} {workload}: {bad}: {check}")


def timed_rounds():
    res = {(c[0], w, t): [] for c in CONFIGS for w, t, _ in RUNS}
    checks = {}
    for r in range(ROUNDS):
        k = r % len(RUNS)
        order = RUNS[k:] + RUNS[:k]
        # std first in even rounds, mapprof first in odd ones; the two runs of a pair are
        # adjacent in time, so their ratio ("paired") cancels slow drifts of the load.
        cfgs = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
        for w, t, ops in order:
            ops = max(1000, int(ops * SCALE))
            for cfg in cfgs:
                fields, check = run_once(cfg, w, t, ops)
                sanity(cfg[0], w, check)
                res[(cfg[0], w, t)].append((fields, parse_check(check)))
                checks.setdefault((cfg[0], w, t), check)
        log(f"   round {r + 1}/{ROUNDS}: "
            + ", ".join(f"{w}/{t} " + "/".join(
                f"{float(res[(c[0], w, t)][-1][0]['ns' if t == 1 else 'mops']):.2f}"
                for c in CONFIGS) for w, t, _ in RUNS)
            + "  (ns std/mapprof for 1 thread, Mops/s for more)")
    # A contended run may by chance see no contention (the other threads not running yet);
    # all the rounds of one thread count must see some, or the profiler is not recording.
    for w, t, _ in CONTENDED:
        if not any(int(c["mutex_samples"]) + int(c["block_samples"]) > 0
                   for _, c in res[("mapprof", w, t)]):
            raise SystemExit(f"mapprof {w} {t} threads: no contention recorded in any round")
    return res, checks


def callgrind():
    ir = {}
    for cfg in CONFIGS:
        for w, _, _ in UNCONTENDED:
            total, (fields, _) = count_instructions(
                lambda prefix: run_once(cfg, w, 1, max(1000, int(CG_OPS * SCALE)),
                                        extra=["--no-check"], prefix=prefix),
                os.path.join(RESULTS, f"callgrind.locks-{cfg[0]}.{w}.out"),
                os.path.join(RESULTS, f"annotate.locks-{cfg[0]}.{w}.txt"))
            done = int(fields["inside"])
            ir[(cfg[0], w)] = (total / done, done)
            log(f"   callgrind {cfg[0]} {w}: {total / done:.2f} Ir/op over {done} ops")
    return ir


def med(xs):
    return statistics.median(xs)


def vals(res, n, w, t, key):
    return [float(f[key]) for f, _ in res[(n, w, t)]]


def measured_line(mach, elapsed, part):
    dirty = " (with uncommitted changes under crates/)" if mach["dirty"] else ""
    return (f"Measured {mach['date']} at commit `{mach['commit']}`{dirty} on {mach['nproc']} CPUs "
            f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}, {mach['valgrind']}; "
            f"load average at start {mach['load']}. {ROUNDS} rounds; {part} "
            f"{elapsed / 60:.1f} min.")


def uncontended_table(res, ir, workloads):
    """The 1-thread table's rows for `workloads`, and per workload the differences to std."""
    L = ["| path | config | ns/op median | [min–max] | fastest block | Ir/op |",
         "|---|---|---:|---:|---:|---:|"]
    diffs = {}
    for w, t, _ in workloads:
        for n, _ in CONFIGS:
            ns = vals(res, n, w, t, "ns")
            best = vals(res, n, w, t, "ns_best")
            irs = f"{ir[(n, w)][0]:.2f}" if ir else "—"
            L.append(f"| {TITLE[w]} | {n} | {med(ns):.2f} | [{min(ns):.2f}–{max(ns):.2f}] | "
                     f"{med(best):.2f} | {irs} |")
        s, m = vals(res, "std", w, t, "ns"), vals(res, "mapprof", w, t, "ns")
        sb, mb = vals(res, "std", w, t, "ns_best"), vals(res, "mapprof", w, t, "ns_best")
        d = med(m) - med(s)
        paired = med([b - a for a, b in zip(s, m)])
        db = med(mb) - med(sb)
        dir_ = ir[("mapprof", w)][0] - ir[("std", w)][0] if ir else None
        diffs[w] = (d, paired, db, dir_)
        irs = f"**{dir_:+.2f}**" if ir else "—"
        L.append(f"| {TITLE[w]} | **mapprof − std** | **{d:+.2f}** (paired {paired:+.2f}) | | "
                 f"**{db:+.2f}** | {irs} |")
    return L, diffs


def contended_table(res, workloads, who):
    """The contended table's rows for `workloads` (`who`: threads or tasks), and the ratios."""
    L = [f"| {who} | std Mops/s | [min–max] | mapprof Mops/s | [min–max] | ratio | paired "
         "| waits / pair | charged unlocks / pair |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = {}
    for w, t, _ in workloads:
        s, m = vals(res, "std", w, t, "mops"), vals(res, "mapprof", w, t, "mops")
        ratio = med(m) / med(s)
        paired = med([b / a for a, b in zip(s, m)])
        ratios[t] = (ratio, paired)
        waits = med([int(c["block_contentions"]) / int(f["check"])
                     for f, c in res[("mapprof", w, t)]])
        charged = med([int(c["mutex_contentions"]) / int(f["check"])
                       for f, c in res[("mapprof", w, t)]])
        L.append(f"| {t} | {med(s):.2f} | [{min(s):.2f}–{max(s):.2f}] | {med(m):.2f} | "
                 f"[{min(m):.2f}–{max(m):.2f}] | {ratio:.3f} | {paired:.3f} | {waits:.3f} | "
                 f"{charged:.3f} |")
    return L, ratios


def verdict(ok):
    return "met" if ok else "**MISSED**"


def report(res, ir, mach, elapsed):
    sync = [r for r in UNCONTENDED if r not in ASYNC_UNCONTENDED + TASK_LABELS]
    L = [measured_line(mach, elapsed, "lock part"), ""]
    L.append("**Uncontended, 1 thread** — nanoseconds per operation (a lock + unlock pair, or "
             "a label guard made and dropped around a trivial body; std's `labels` only calls "
             "the body): median of the rounds of (run time ÷ operations), min–max in brackets; "
             "*fastest block* = median over rounds of the fastest tenth of each run (filters "
             "out preemptions); *Ir/op* = instructions per operation under callgrind. The "
             "*mapprof − std* row gives the difference of the medians, and in brackets the "
             "median over rounds of the difference within a round (\"paired\").")
    L.append("")
    rows, diffs = uncontended_table(res, ir, sync)
    L += rows
    L.append("")
    if ir:
        L.append(f"Callgrind counts {ir[('std', 'mutex')][1]:,} operations per run on the main thread "
                 f"(the measured loop and its warm-up, both inside `bench_measured_*`), "
                 f"nothing else.")
        L.append("")
    L.append("**Contended: one `Mutex` shared by N threads**, each locking it in a loop (critical "
             "section: increment a counter, add it into one of 8 slots); 10M lock + unlock "
             "pairs in all per run. Throughput in million pairs per second, all threads "
             "together (median, min–max); *ratio* = mapprof median ÷ std median; *paired* = "
             "median over rounds of the per-round ratio. The machine has "
             f"{mach['nproc']} CPUs: 4 and 8 threads oversubscribe it. The last two columns "
             "are what mapprof's own profiles estimate, per lock + unlock pair (warm-up "
             "included): waits (lock calls that found the lock taken and took the contended "
             "path; block profile) and charged unlocks (unlocks that found waiters registered; "
             "mutex profile).")
    L.append("")
    rows, ratios = contended_table(
        res, [r for r in CONTENDED if r not in ASYNC_CONTENDED], "threads")
    L += rows
    L.append("")
    L.append("**Targets**:")
    L.append("")
    for w in ("mutex", "rwread", "rwwrite"):
        d, paired, db, dir_ = diffs[w]
        ok = d <= 1.0
        extra = f"; {dir_:+.2f} instructions per pair" if dir_ is not None else ""
        L.append(f"- {TITLE[w]} within 1 ns of std: {verdict(ok)} (difference of medians "
                 f"{d:+.2f} ns, paired {paired:+.2f} ns, fastest blocks {db:+.2f} ns{extra})")
    for w in ("labels", "labels-trace"):
        d, paired, db, dir_ = diffs[w]
        extra = f"; {dir_:+.2f} instructions" if dir_ is not None else ""
        L.append(f"- a {TITLE[w]} costs {d:.1f} ns (no target; paired {paired:.1f} ns, "
                 f"fastest blocks {db:.1f} ns{extra})")
    for t, (ratio, paired) in ratios.items():
        L.append(f"- contended, {t} threads, ≥ 0.95 × std's throughput: {verdict(ratio >= 0.95)} "
                 f"(ratio {ratio:.3f}, paired {paired:.3f})")
    L.append("")
    return "\n".join(L)


def report_async(res, ir, mach, elapsed):
    L = [measured_line(mach, elapsed, "lock runs (both parts)"), ""]
    L.append("**Uncontended `lock().await`, 1 thread**: `tokio::sync::Mutex` (config *std*) "
             "against `mapprof::tokio::Mutex`, the `lock()` future polled once with a no-op "
             "waker and the guard dropped; columns as in the table above.")
    L.append("")
    rows, diffs = uncontended_table(res, ir, ASYNC_UNCONTENDED)
    L += rows
    L.append("")
    L.append("**Contended: N tasks on one current-thread runtime**, each locking in a loop and "
             "yielding while it holds the lock (then the critical section above): every "
             "acquisition but the first finds the lock taken, so every pair pays the profiler's "
             "contended path (three clock reads, the book, a sampling draw; the stack of sampled "
             "waits only) next to tokio's park and wake; 1M pairs in all per run. Columns as in "
             "the table above.")
    L.append("")
    rows, ratios = contended_table(res, ASYNC_CONTENDED, "tasks")
    L += rows
    L.append("")
    L.append("**Targets**:")
    L.append("")
    d, paired, db, dir_ = diffs["async-mutex"]
    extra = f"; {dir_:+.2f} instructions per pair" if dir_ is not None else ""
    L.append(f"- {TITLE['async-mutex']} within 2 ns of tokio's: {verdict(d <= 2.0)} (difference "
             f"of medians {d:+.2f} ns, paired {paired:+.2f} ns, fastest blocks {db:+.2f} "
             f"ns{extra})")
    for t, (ratio, paired) in ratios.items():
        L.append(f"- contended, {t} tasks, ≥ 0.95 × tokio's throughput: "
                 f"{verdict(ratio >= 0.95)} (ratio {ratio:.3f}, paired {paired:.3f})")
    L.append("")
    L.append("**Task labels and the tracing layer, 1 thread**: *std* polls the unwrapped future "
             "and runs spans under a plain `tracing_subscriber` registry; *mapprof* polls it "
             "wrapped by `with_labels` and adds `MapprofLayer` (both fields chosen) to the "
             "registry, the profiler running. Columns as in the tables above.")
    L.append("")
    rows, diffs = uncontended_table(res, ir, TASK_LABELS)
    L += rows
    L.append("")
    for w, _, _ in TASK_LABELS:
        d, paired, db, dir_ = diffs[w]
        extra = f"; {dir_:+.2f} instructions" if dir_ is not None else ""
        L.append(f"- {TITLE[w]}: mapprof adds {d:.1f} ns (no target; paired {paired:.1f} ns, "
                 f"fastest blocks {db:.1f} ns{extra})")
    L.append("")
    return "\n".join(L)


def write_doc(figures, begin=BEGIN, end=END, what="lock figures"):
    replace_section(begin, end, figures, "bench/locks.py", what)


def main(build_first=True):
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if build_first and os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    log(f"== lock timed runs: {ROUNDS} rounds x {len(CONFIGS)} configs x {len(RUNS)} workloads")
    res, _ = timed_rounds()
    ir = {}
    if os.environ.get("BENCH_NO_CALLGRIND") != "1":
        log("== lock callgrind (1 thread, uncontended paths)")
        ir = callgrind()
    parts = []
    if "sync" in PARTS:
        parts.append((report(res, ir, mach, time.time() - t0), "locks.md", BEGIN, END,
                      "lock figures"))
    if "async" in PARTS:
        parts.append((report_async(res, ir, mach, time.time() - t0), "async-locks.md",
                      ASYNC_BEGIN, ASYNC_END, "async lock figures"))
    for figures, name, _, _, _ in parts:
        print(figures)
        with open(os.path.join(RESULTS, name), "w") as f:
            f.write(figures + "\n")
    with open(os.path.join(RESULTS, "locks.tsv"), "w") as f:
        f.write("config\tworkload\tthreads\tround\tns\tns_best\tmops\tcheck\n")
        for (n, w, t), runs in res.items():
            for i, (fl, c) in enumerate(runs):
                f.write(f"{n}\t{w}\t{t}\t{i + 1}\t{fl['ns']}\t{fl['ns_best']}\t{fl['mops']}\t"
                        + " ".join(f"{k}={v}" for k, v in c.items()) + "\n")
    if not QUICK and os.environ.get("BENCH_NO_WRITE") != "1":
        for figures, _, begin, end, what in parts:
            write_doc(figures, begin, end, what)


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
