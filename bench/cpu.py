#!/usr/bin/env python3
"""mapprof's CPU sampler benchmark (the CPU part of `make bench`; bench/run.py calls it after the
footprint part, BENCH_NO_CPU=1 skips it, bench/cpu.sh runs it alone): what a CPU profile costs
the profiled program per sample, in CPU time and in memory, next to pprof-rs's CPU profiler (the
sampler mapprof used before its own).

Binaries (each runs the same fixed work; usage and output in bench_workload::cpu_main):
  bench-cpu        (bench/cpu, the bench workspace) `mapprof::Alloc::jemalloc()`, the profiler
                   started at its defaults, each profile `mapprof::CpuProfiler::start(hz)` ..
                   `finish()` (SIGPROF handler walking frame pointers into a fixed table; finish
                   builds and symbolizes the profile);
  bench-pprof-cpu  (bench/peers/pprof-cpu, a workspace of its own, bench/target-pprof-cpu)
                   bare jemalloc, pprof 0.15 with its default features, each profile
                   `ProfilerGuardBuilder::default().frequency(hz).build()` ..
                   `guard.report().build()`, then the guard dropped.
Work: the hashmap workload of bench/workload (the incident's cache rebuild: a String clone and
an insert per entry, allocating, CPU-bound) on 2 threads, a fixed number of operations per
thread per profile, and 10 profiles per process, each a fresh pair of threads (warm-up
included) under a CPU profile started just before them and finished just after. Each binary
runs at 0 Hz (no profiler: its own baseline), 99 Hz and 1000 Hz (the kernel sends at most one
SIGPROF per 4 ms tick per CPU, CONFIG_HZ=250 here: 1000 Hz gives about 250 samples per CPU-second
each weighted 1 ms); the six runs of a round in an order rotated each round.

Figures:
  samples        SIGPROF ticks in the profile (sum of the samples' counts), per profile;
  Δ CPU/sample   (CPU time of the workload threads at hz − the same binary's at 0 Hz in the same
                 round) ÷ samples: each thread's `CLOCK_THREAD_CPUTIME_ID` over its whole life
                 (set-up and warm-up included, the kernel's signal delivery included), summed
                 over the threads and the 10 profiles. Every SIGPROF lands on these threads (the
                 main thread sleeps in `join`). Not the process clock: while ITIMER_PROF is
                 armed the kernel reads that from the group timer's sums, in 4 ms steps. Median
                 over rounds, min–max in brackets. A few µs per sample is a few thousandths of
                 the work's CPU time, within this machine's run-to-run spread: the bracket says
                 what the figure resolves;
  handler µs     the SIGPROF handler's CPU time per call, timed inside the process
                 (bench/cpu/src/handler_clock.rs wraps the profiler's handler once it is
                 installed and reads the thread's CPU clock around it, the reads' cost
                 subtracted): mean (total ÷ calls, what the samples cost the program in all)
                 and median; page faults taken in the handler count (mapprof's CPU table is
                 handed back after each profile, so a profile's first samples page it in
                 again), the kernel's signal delivery does not. % CPU = mean × samples ÷ the
                 workload's CPU time;
  Ir/sample      instructions of the SIGPROF handler (callgrind's inclusive cost of
                 `mapprof_rt::cpu::on_sigprof`, pprof-rs's `perf_signal_handler`) ÷ samples, one
                 run of 1 thread at 1000 Hz under `valgrind --tool=callgrind`: exact and
                 repeatable, but without the kernel's signal delivery and without cache misses;
  start / finish CPU time of the main thread to start a profile, and to finish it (stop,
                 collect, build and symbolize the profile), ms per profile: the first profile
                 (cold: it symbolizes first) and the median of the others;
  memory         VmRSS and RssAnon after profile 1 and after profile 10 (after `finish`
                 returned and its profile was dropped), and RssAnon minus the same binary's at
                 0 Hz at the same point (what the profiler holds; growth from 1 to 10).

Environment (the same variables as bench/run.py, and BENCH_CPU_ROUNDS=5, BENCH_CPU_OPS=4000000
operations per thread per profile, BENCH_CPU_PROFILES=10); BENCH_QUICK=1: 2 rounds, 3 profiles,
a tenth of the work, figures not written. Rewrites the `cpu:begin` / `cpu:end` section of
BENCHMARKS.md. About 1-1.5 minutes a round here (a smoke run of 3 rounds took 4.5 minutes on the
shared machine): 5-8 minutes with the defaults, plus the first build of pprof-rs.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from run import BENCH, JOBS, QUICK, RESULTS, log, machine, publish

BEGIN, END = "<!-- cpu:begin -->", "<!-- cpu:end -->"
ROUNDS = int(os.environ.get("BENCH_CPU_ROUNDS", "2" if QUICK else "5"))
OPS = int(os.environ.get("BENCH_CPU_OPS", "400000" if QUICK else "4000000"))
PROFILES = int(os.environ.get("BENCH_CPU_PROFILES", "3" if QUICK else "10"))
THREADS = 2
RATES = [0, 99, 1000]
CG_HZ, CG_OPS = 1000, 40_000 if QUICK else 200_000
MIB = 1 << 20

# name, cargo workspace (relative to bench/), target dir, binary, handler symbol (callgrind)
PROFILERS = [
    ("mapprof", ".", "target", "bench-cpu", "on_sigprof"),
    ("pprof-rs", "peers/pprof-cpu", "target-pprof-cpu", "bench-pprof-cpu", "perf_signal_handler"),
]


def binary(p):
    return os.path.join(BENCH, p[2], "release", p[3])


def build():
    for name, ws, target, exe, _ in PROFILERS:
        cmd = ["cargo", "build", "--release", f"-j{JOBS}", "--bin", exe]
        log(f"== {' '.join(cmd)} in bench/{ws} (target bench/{target})")
        subprocess.run(cmd, cwd=os.path.join(BENCH, ws), check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(BENCH, target)))


def run_once(p, hz, profiles, threads, ops, prefix=()):
    cmd = list(prefix) + [binary(p), str(hz), str(profiles), str(threads), str(ops), "hashmap"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                       env={k: v for k, v in os.environ.items() if k != "MAPPROF"})
    if r.returncode != 0:
        raise SystemExit(f"{p[0]} at {hz} Hz failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    line = [x for x in r.stdout.splitlines() if x.startswith("result: ")]
    if not line:
        raise SystemExit(f"{p[0]} at {hz} Hz printed no result:\n{r.stdout}\n{r.stderr}")
    res = json.loads(line[0][len("result: "):])
    for prof in res["profiles"]:
        if hz and prof["samples"] == 0:
            raise SystemExit(f"{p[0]} at {hz} Hz: profile {prof['i']} holds no samples")
    return res


def timed_rounds():
    runs = {(p[0], hz): [] for p in PROFILERS for hz in RATES}
    configs = [(p, hz) for p in PROFILERS for hz in RATES]
    for r in range(ROUNDS):
        k = r % len(configs)
        for p, hz in configs[k:] + configs[:k]:
            runs[(p[0], hz)].append(run_once(p, hz, PROFILES, THREADS, OPS))
        log(f"   cpu round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{p[0]}@{hz} {sum(x['thread_cpu_s'] for x in runs[(p[0], hz)][-1]['profiles']):.3f} CPU-s"
            for p, hz in configs))
    return runs


def inclusive_ir(path, needle):
    """Callgrind's inclusive instructions of the functions whose name contains `needle`: their
    own cost lines (inlined code included, whatever file it came from) plus the inclusive cost
    of every call they make; and how many calls they received. Read from the callgrind file
    itself: callgrind_annotate splits a function by the files its inlined code came from."""
    names, fn, pending_call, ir, calls = {}, None, None, 0, 0
    cfn = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.partition("=")
                if rest.startswith("("):
                    ident, _, name = rest[1:].partition(")")
                    name = name.strip()
                    if name:
                        names[ident] = name
                    name = names.get(ident, "")
                else:
                    name = rest
                if key == "fn":
                    fn, cfn = name, None
                else:
                    cfn = name
                continue
            if line.startswith("calls="):
                pending_call = int(line[6:].split()[0])
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            if pending_call is not None:
                if cfn and needle in cfn and not (fn and needle in fn):
                    calls += pending_call
                if fn and needle in fn:
                    ir += cost  # a call made from inside the handler: its inclusive cost
                pending_call = None
            elif fn and needle in fn:
                ir += cost
    return ir, calls


def handler_ir(p, out):
    """Callgrind, 1 thread at CG_HZ: (instructions in the handler, samples, total Ir)."""
    res = run_once(p, CG_HZ, 1, 1, CG_OPS,
                   prefix=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    ir, _ = inclusive_ir(out, p[4])
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if not ir:
        raise SystemExit(f"callgrind: no cost in a function named *{p[4]}* in {out}")
    return ir, res["profiles"][0]["samples"], total


def med(xs):
    return statistics.median(xs)


def report(runs, cg, mach, elapsed):
    L = []
    L.append(f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['nproc']} CPUs "
             f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}; load average at start "
             f"{mach['load']}. {ROUNDS} rounds; per run {PROFILES} profiles, each over "
             f"{THREADS} threads × {OPS:,} hashmap operations; CPU part {elapsed / 60:.1f} min.")
    L.append("")
    L.append("*samples* = SIGPROF ticks per profile (median). *handler µs*: the SIGPROF "
             "handler's CPU time per call, timed inside the process (bench/cpu/src/"
             "handler_clock.rs: the thread's CPU clock read around the profiler's handler, the "
             "reads' own cost subtracted; page faults included, the kernel's delivery of the "
             "signal not): *mean* = its total ÷ calls per run, median over rounds, min–max in "
             "brackets; *median* = the median call over all runs. *% CPU* = handler mean × "
             "samples ÷ the workload threads' CPU time. *Ir/sample* = callgrind instructions of "
             f"the handler per sample (1 thread, {CG_HZ} Hz; no page-fault or cache-miss cost). "
             "*Δ CPU/sample* = (the workload threads' CPU time − the same binary's at 0 Hz, same "
             "round) ÷ samples, median [min–max]: everything a sample costs, kernel included, "
             "but a few µs per sample is a few thousandths of the work, far inside this "
             "machine's run-to-run spread (see the brackets). *start* / *finish* = the main "
             "thread's CPU ms to start a profile / to stop, collect and build it: first profile "
             "/ median of the others.")
    L.append("")
    L.append("| profiler | Hz | samples | handler µs mean | [min–max] | median | % CPU | "
             "Ir/sample | Δ CPU/sample µs | [min–max] | start ms | finish ms |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in PROFILERS:
        base = runs[(p[0], 0)]
        for hz in RATES:
            if not hz:
                continue
            rs = runs[(p[0], hz)]
            cpu = [sum(x["thread_cpu_s"] for x in r["profiles"]) for r in rs]
            smp = [x["samples"] for r in rs for x in r["profiles"]]
            nsamp = [sum(x["samples"] for x in r["profiles"]) for r in rs]
            per = [(c - sum(x["thread_cpu_s"] for x in b["profiles"])) * 1e6 / n
                   for c, n, b in zip(cpu, nsamp, base)]
            hmean = [sum(x["handler_mean_ns"] * x["handler_calls"] for x in r["profiles"])
                     / max(1, sum(x["handler_calls"] for x in r["profiles"])) / 1e3 for r in rs]
            hmed = med([x["handler_median_ns"] / 1e3 for r in rs for x in r["profiles"]])
            share = med([m * 1e-6 * n / c * 100 for m, n, c in zip(hmean, nsamp, cpu)])
            st = (f"{med([r['profiles'][0]['start_cpu_s'] * 1e3 for r in rs]):.2f} / "
                  f"{med([x['start_cpu_s'] * 1e3 for r in rs for x in r['profiles'][1:]] or [0]):.2f}")
            fi = (f"{med([r['profiles'][0]['finish_cpu_s'] * 1e3 for r in rs]):.1f} / "
                  f"{med([x['finish_cpu_s'] * 1e3 for r in rs for x in r['profiles'][1:]] or [0]):.1f}")
            irs = "—"
            if cg.get(p[0]) and hz == CG_HZ:
                ir, n, _ = cg[p[0]]
                irs = f"{ir / n:,.0f} ({n:,} samples)"
            L.append(f"| {p[0]} | {hz} | {med(smp):,.0f} | {med(hmean):.2f} | "
                     f"[{min(hmean):.2f}–{max(hmean):.2f}] | {hmed:.2f} | {share:.3f} | {irs} | "
                     f"{med(per):,.0f} | [{min(per):,.0f}–{max(per):,.0f}] | {st} | {fi} |")
    L.append("")
    for p in PROFILERS:
        cpu0 = [sum(x["thread_cpu_s"] for x in r["profiles"]) for r in runs[(p[0], 0)]]
        L.append(f"- {p[0]} without a profile: the workload threads' CPU time per run "
                 f"{med(cpu0):.3f} s (median) [{min(cpu0):.3f}–{max(cpu0):.3f}].")
    L.append("")
    L.append(f"Memory after profile 1 and after profile {PROFILES} (MiB, median over rounds; "
             "*Δ anon* = RssAnon − the same binary's at 0 Hz at the same point, the profiler's "
             "own; *growth* = Δ anon after the last − after the first):")
    L.append("")
    L.append(f"| profiler | Hz | VmRSS 1 | VmRSS {PROFILES} | RssAnon 1 | RssAnon {PROFILES} | "
             f"Δ anon 1 | Δ anon {PROFILES} | growth |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in PROFILERS:
        base = runs[(p[0], 0)]
        b1 = med([r["profiles"][0]["anon"] for r in base])
        bn = med([r["profiles"][-1]["anon"] for r in base])
        for hz in RATES:
            rs = runs[(p[0], hz)]
            v1 = med([r["profiles"][0]["rss"] for r in rs])
            vn = med([r["profiles"][-1]["rss"] for r in rs])
            a1 = med([r["profiles"][0]["anon"] for r in rs])
            an = med([r["profiles"][-1]["anon"] for r in rs])
            d1, dn = a1 - b1, an - bn
            L.append(f"| {p[0]} | {hz or 'none'} | {v1 / MIB:.1f} | {vn / MIB:.1f} | "
                     f"{a1 / MIB:.1f} | {an / MIB:.1f} | "
                     + (f"{d1 / MIB:+.1f} | {dn / MIB:+.1f} | {(dn - d1) / MIB:+.1f} |" if hz
                        else "— | — | — |"))
    L.append("")
    if cg:
        L.append("Callgrind runs (1 thread, 1 profile at " f"{CG_HZ} Hz, {CG_OPS:,} operations; "
                 "instructions of the whole program): " + "; ".join(
                     f"{n}: handler {ir:,} Ir over {s:,} samples of {tot:,} Ir in all"
                     for n, (ir, s, tot) in cg.items()) + ".")
        L.append("")
    return "\n".join(L)


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    log(f"== cpu: {ROUNDS} rounds x {len(PROFILERS)} profilers x {len(RATES)} rates, "
        f"{PROFILES} profiles of {THREADS} x {OPS:,} ops")
    runs = timed_rounds()
    with open(os.path.join(RESULTS, "cpu-runs.json"), "w") as f:
        json.dump({f"{n}@{hz}": rs for (n, hz), rs in runs.items()}, f)
    cg = {}
    if os.environ.get("BENCH_NO_CALLGRIND") != "1":
        for p in PROFILERS:
            t = time.time()
            cg[p[0]] = handler_ir(p, os.path.join(RESULTS, f"callgrind.cpu.{p[0]}.out"))
            ir, n, _ = cg[p[0]]
            log(f"   callgrind {p[0]}: {ir / n:,.0f} Ir/sample over {n} samples "
                f"({time.time() - t:.0f} s)")
    figures = report(runs, cg, mach, time.time() - t0)
    publish(figures, "cpu.md", BEGIN, END, "bench/cpu.py", "CPU figures")


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
