#!/usr/bin/env python3
"""mapprof's scrape benchmark (the scrape part of `make bench`; bench/run.py calls it after the
service part, BENCH_NO_SCRAPE=1 skips it, bench/scrape.sh runs it alone). Issue 6: one scrape of
`/debug/pprof/heap` with 10,000 distinct stacks takes under 250 ms and under 64 MiB of extra
memory, symbolization included.

bench/scrape (binary bench-scrape, the bench workspace, mapprof over jemalloc) makes 10,000
distinct live heap stacks at heap_rate=1 (a 14-level recursion through one of two
#[inline(never)] callees per level, the path's bits choosing, 64 bytes allocated and kept at the
leaf), starts mapprof's HTTP server on 127.0.0.1:0, then scrapes `/debug/pprof/heap` N times
(std TcpStream, HTTP/1.1, whole body read), each timed from connect to the body's last byte.
The first scrape is cold (it symbolizes every address), the others warm. Memory per scrape:
peak RSS reset before it (/proc/self/clear_refs = 5), VmHWM after it minus VmRSS before it (the
extra resident memory at the peak, the server thread included: one process), and jemalloc's
stats.allocated after minus before (what the scrape kept). Each answer must decode
(mapprof_profile::codec::decode) and hold >= 10,000 samples and exactly 10,000 distinct stacks through `leaf`, or the driver
stops. Anonymous memory (the footprint targets, see bench/footprint.py: mapprof's own
anonymous memory at most 16 MiB above the program without it at any moment, back to at most
4 MiB above within 1 s after a scrape): a thread of bench-scrape reads RssAnon every 1 ms; per
scrape RssAnon just before it, its sampled peak until the body's last byte and RssAnon 1 s after
that byte (before the answer is decoded); the table gives peak − before and 1 s after − before,
the scrape's own share (the tables holding the 10,000 stacks are in `before`). Rewrites the
`scrape:begin` / `scrape:end` section of BENCHMARKS.md.

Environment: BENCH_SCRAPES=5 (scrapes per process), BENCH_SCRAPE_RUNS=3 (processes; the table
gives per process the cold scrape and the median warm one, then medians over processes),
BENCH_NO_BUILD, BENCH_NO_WRITE, BENCH_JOBS, BENCH_QUICK (1 process, figures not written).
"""

import json
import os
import statistics
import subprocess
import sys
import time

from run import BENCH, JOBS, QUICK, RESULTS, log, machine, publish

BEGIN, END = "<!-- scrape:begin -->", "<!-- scrape:end -->"
SCRAPES = int(os.environ.get("BENCH_SCRAPES", "5"))
RUNS = int(os.environ.get("BENCH_SCRAPE_RUNS", "1" if QUICK else "3"))
STACKS = 10_000
TARGET_MS, TARGET_MIB = 250, 64
TARGET_ANON_PEAK_MIB, TARGET_ANON_AFTER_MIB = 16, 4
BIN = os.path.join(BENCH, "target", "release", "bench-scrape")
MIB = 1 << 20


def build():
    cmd = ["cargo", "build", "--release", f"-j{JOBS}", "-p", "bench-scrape"]
    log(f"== {' '.join(cmd)} (in bench/)")
    subprocess.run(cmd, cwd=BENCH, check=True)


def one_run(i):
    p = subprocess.run([BIN, str(SCRAPES)], capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "MAPPROF"})
    if p.returncode != 0:
        raise SystemExit(f"bench-scrape failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    with open(os.path.join(RESULTS, f"scrape.{i}.txt"), "w") as f:
        f.write(p.stdout)
    line = [x for x in p.stdout.splitlines() if x.startswith("result: ")]
    if not line:
        raise SystemExit(f"bench-scrape printed no result:\n{p.stdout}")
    res = json.loads(line[0][len("result: "):])
    for s in res["scrapes"]:
        if s["samples"] < STACKS or s["leaf_stacks"] != STACKS:
            raise SystemExit(f"scrape {s['i']}: {s['samples']} samples, {s['leaf_stacks']} "
                             f"distinct stacks through leaf (want {STACKS})")
    if not res["hwm_reset"]:
        raise SystemExit("peak RSS cannot be reset here (/proc/self/clear_refs): no per-scrape "
                         "peak memory")
    log(f"   run {i + 1}/{RUNS}: " + ", ".join(f"{s['ms']:.0f} ms" for s in res["scrapes"]) +
        "; peak extra RSS " + ", ".join(f"{s['peak_extra_rss'] / MIB:.1f}"
                                        for s in res["scrapes"]) + " MiB")
    return res


def report(runs, mach, elapsed):
    med = statistics.median
    cold = [r["scrapes"][0] for r in runs]
    warm = [s for r in runs for s in r["scrapes"][1:]]
    L = []
    L.append(f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['nproc']} CPUs "
             f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}; load average at start "
             f"{mach['load']}. {RUNS} processes × {SCRAPES} scrapes (1 cold + {SCRAPES - 1} "
             f"warm), {STACKS:,} distinct live stacks of {runs[0]['depth']} levels (≥ 30 frames) "
             f"at heap_rate=1; scrape part {elapsed:.0f} s.")
    L.append("")
    L.append("*time* = connect to last body byte; *peak extra RSS* = VmHWM after the scrape − "
             "VmRSS before it (peak RSS reset before each scrape); *kept* = jemalloc "
             "stats.allocated after − before (caches the scrape leaves); *samples* = samples in "
             "the decoded answer (the driver's own allocations are sampled too, hence a few more "
             "than 10,000); *leaf stacks* = distinct location lists through the allocating "
             "function (must be 10,000); *anon peak* = RssAnon's peak during the scrape (read "
             "every 1 ms) − RssAnon just before it; *anon 1 s* = RssAnon 1 s after the last "
             "byte − just before. Median over the scrapes in the class, min–max in brackets.")
    L.append("")
    L.append("| scrape | n | time ms | [min–max] | peak extra RSS MiB | [min–max] | kept MiB | "
             "anon peak MiB | [min–max] | anon 1 s MiB | [min–max] | body KiB | samples | "
             "leaf stacks |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, ss in (("cold (1st: symbolizes)", cold), ("warm (2nd…)", warm)):
        if not ss:
            continue
        ms = [s["ms"] for s in ss]
        rss = [s["peak_extra_rss"] / MIB for s in ss]
        kept = [s["allocated_delta"] / MIB for s in ss]
        apk = [(s["anon_peak"] - s["anon_before"]) / MIB for s in ss]
        a1 = [(s["anon_1s"] - s["anon_before"]) / MIB for s in ss]
        L.append(f"| {name} | {len(ss)} | {med(ms):.0f} | [{min(ms):.0f}–{max(ms):.0f}] | "
                 f"{med(rss):.1f} | [{min(rss):.1f}–{max(rss):.1f}] | {med(kept):.1f} | "
                 f"{med(apk):.1f} | [{min(apk):.1f}–{max(apk):.1f}] | {med(a1):.1f} | "
                 f"[{min(a1):.1f}–{max(a1):.1f}] | "
                 f"{med([s['body'] for s in ss]) / 1024:.0f} | "
                 f"{med([s['samples'] for s in ss]):,.0f} | "
                 f"{med([s['leaf_stacks'] for s in ss]):,.0f} |")
        rows.append((name.split()[0], max(ms), med(ms), max(rss), med(rss), max(apk), max(a1)))
    L.append("")
    L.append(f"**Target** (one scrape < {TARGET_MS} ms and < {TARGET_MIB} MiB extra, "
             "symbolization included, i.e. the cold scrape counts; worst of the runs):")
    L.append("")

    def v(x, t):
        return "met" if x < t else f"**MISSED** ({x / t:.2f}× the target)"

    for name, ms_max, ms_med, rss_max, rss_med, _, _ in rows:
        L.append(f"- {name}: time {ms_max:.0f} ms worst (median {ms_med:.0f}) "
                 f"{v(ms_max, TARGET_MS)}; peak extra memory {rss_max:.1f} MiB worst (median "
                 f"{rss_med:.1f}) {v(rss_max, TARGET_MIB)}")
    L.append("")
    L.append(f"**Footprint targets**, the scrape's share (RssAnon above the process just before "
             f"it; worst of the scrapes in the class; the whole process against a bare build is "
             f"the footprint part's):")
    L.append("")

    def va(x, t):
        return "met" if x <= t else f"**MISSED** ({x / t:.2f}× the target)"

    for name, _, _, _, _, apk_max, a1_max in rows:
        L.append(f"- {name}: peak {apk_max:+.1f} MiB {va(apk_max, TARGET_ANON_PEAK_MIB)} "
                 f"(≤ {TARGET_ANON_PEAK_MIB}); 1 s after {a1_max:+.1f} MiB "
                 f"{va(a1_max, TARGET_ANON_AFTER_MIB)} (≤ {TARGET_ANON_AFTER_MIB})")
    L.append("")
    L.append(f"Process before scraping: RssAnon "
             f"{med([r['scrapes'][0]['anon_before'] for r in runs]) / MIB:.1f} MiB, "
             f"VmRSS {med([r['rss0'] for r in runs]) / MIB:.1f} MiB, "
             f"jemalloc allocated {med([r['allocated0'] for r in runs]) / MIB:.1f} MiB; after "
             f"the {SCRAPES} scrapes: VmRSS {med([r['rss_end'] for r in runs]) / MIB:.1f} MiB, "
             f"allocated {med([r['allocated_end'] for r in runs]) / MIB:.1f} MiB (medians).")
    return "\n".join(L)


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    log(f"== scrape: {RUNS} processes x {SCRAPES} scrapes of /debug/pprof/heap, {STACKS} stacks")
    runs = [one_run(i) for i in range(RUNS)]
    figures = report(runs, mach, time.time() - t0)
    publish(figures, "scrape.md", BEGIN, END, "bench/scrape.py", "scrape figures")


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
