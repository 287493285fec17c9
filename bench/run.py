#!/usr/bin/env python3
"""mapprof's allocator benchmark driver: builds every configuration, runs them interleaved over
several rounds, counts instructions per operation under callgrind, prints a table and rewrites
the figures section of BENCHMARKS.md (between its `figures:begin` / `figures:end` markers).

Environment (all optional):
  BENCH_ROUNDS=7          timed rounds; every round runs every configuration once, in rotated order
  BENCH_QUICK=1           3 rounds and a tenth of the work (a smoke test; figures not written)
  BENCH_NO_CALLGRIND=1    skip the callgrind part
  BENCH_NO_BUILD=1        use the binaries already built
  BENCH_NO_WRITE=1        do not touch BENCHMARKS.md
  BENCH_JOBS=2            cargo -j
  BENCH_NO_LOCKS=1        skip the lock part (bench/locks.py, run after the heap part with the
                          same variables; bench/locks.sh runs it alone)
  BENCH_NO_SERVICE=1      skip the service part (bench/service.py, run after the lock part with
                          the same variables: the incident's HTTP service built with and without
                          mapprof, QPS side by side; bench/service.sh runs it alone)
  BENCH_NO_SCRAPE=1       skip the scrape part (bench/scrape.py, run after the service part:
                          scrapes of /debug/pprof/heap with 10,000 distinct stacks, time and
                          memory; bench/scrape.sh runs it alone)
  BENCH_NO_FOOTPRINT=1    skip the footprint part (bench/footprint.py, run after the scrape
                          part: the service's VmRSS and RssAnon, bare and profiled, idle, under
                          load, around scrapes and CPU profiles; bench/footprint.sh alone)
  BENCH_NO_PUSH=1         skip the push part (bench/push.py, run after the footprint part: the
                          service pushing to a loopback Pyroscope every 10 s against the same
                          service not pushing; bench/push.sh alone)
  BENCH_NO_CPU=1          skip the CPU sampler part (bench/cpu.py, run last: CPU time and
                          instructions per SIGPROF sample and memory, mapprof against pprof-rs;
                          bench/cpu.sh alone)
  BENCH_NO_TESTING=1      skip the testing part (bench/testing.py, run last: what
                          `mapprof::testing::measure` costs per allocation inside a scope, and
                          beside one on another thread; bench/testing.sh alone)
"""

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results")
DOC = os.path.join(ROOT, "BENCHMARKS.md")
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3" if QUICK else "7"))
JOBS = os.environ.get("BENCH_JOBS", "2")
SCALE = 0.1 if QUICK else 1.0

THREADS = 2
# Operations per thread for the timed runs: about 0.4-1 s of bare jemalloc per run here.
OPS = {"mixed": 24_000_000, "hashmap": 8_000_000}
# Operations for the single-threaded callgrind runs.
CG_OPS = {"mixed": 1_000_000, "hashmap": 1_000_000}

# name, cargo workspace (relative to bench/), target dir, binary, environment, work divisor
# (dhat records every allocation with a backtrace and runs ~100x slower: it gets less work;
# throughput is a rate, so the figures stay comparable).
CONFIGS = [
    ("jemalloc", ".", "target", "bench-bare", {}, 1),
    ("mapprof", ".", "target", "bench-mapprof-default", {}, 1),
    ("mapprof-off", ".", "target", "bench-mapprof-off", {}, 1),
    ("jeprof", "peers/jeprof", "target-jeprof", "bench-jeprof",
     {"_RJEM_MALLOC_CONF": "prof:true,lg_prof_sample:19"}, 1),
    ("jeprof-built-off", "peers/jeprof", "target-jeprof", "bench-jeprof", {}, 1),
    ("pprof-alloc", "peers/pprof-alloc", "target-pprof-alloc", "bench-pprof-alloc",
     {"PPROF_ALLOC_ALLOCATOR": "jemalloc", "PPROF_ALLOC_BACKEND": "wrapper"}, 4),
    ("dhat", "peers/dhat", "target-dhat", "bench-dhat", {}, 200),
]
# dhat under callgrind: far less work still (every allocation walks the stack with DWARF).
CG_DIVISOR = {"dhat": 100}

DESCRIPTION = {
    "jemalloc": "bare jemalloc (tikv-jemallocator 0.7), no profiler: the baseline",
    "mapprof": "`mapprof::Alloc::jemalloc()`, `Profiler::builder().start()` (default heap_rate 524288)",
    "mapprof-off": "`mapprof::Alloc::jemalloc()`, `Profiler::builder().heap_rate(0).start()`",
    "jeprof": "jemalloc's profiler: tikv-jemallocator `profiling`, `_RJEM_MALLOC_CONF=prof:true,lg_prof_sample:19`",
    "jeprof-built-off": "control: the jeprof binary without `_RJEM_MALLOC_CONF` (profiling compiled in, off)",
    "pprof-alloc": "pprof-alloc 0.6 `PprofAlloc` wrapper sampler at 512 KiB over jemalloc (`PPROF_ALLOC_BACKEND=wrapper`)",
    "dhat": "dhat 0.3 `dhat::Alloc` with a `dhat::Profiler` running (records every allocation)",
}

PEERS = ["jeprof", "pprof-alloc", "dhat"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def binary(cfg):
    _, _, target, exe, _, _ = cfg
    return os.path.join(BENCH, target, "release", exe)


def build():
    done = set()
    for name, ws, target, _, _, _ in CONFIGS:
        if (ws, target) in done:
            continue
        done.add((ws, target))
        log(f"== cargo build --release -j{JOBS} in bench/{ws} (target bench/{target})")
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BENCH, target))
        subprocess.run(["cargo", "build", "--release", f"-j{JOBS}"],
                       cwd=os.path.join(BENCH, ws), env=env, check=True)


RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)
CHECK_RE = re.compile(r"^CHECK config=\S+ (.*)$", re.M)


def run_once(cfg, workload, threads, ops, extra=(), prefix=()):
    name, _, _, _, env, _ = cfg
    cmd = list(prefix) + [binary(cfg), workload, str(threads), str(ops)] + list(extra)
    p = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{name} {workload} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    m = RESULT_RE.search(p.stdout)
    if not m:
        raise SystemExit(f"{name} {workload}: no RESULT line:\n{p.stdout}\n{p.stderr}")
    fields = dict(kv.split("=", 1) for kv in m.group(1).split())
    c = CHECK_RE.search(p.stdout)
    return fields, (c.group(1) if c else None)


def sanity(name, check):
    """Fails loudly when a configuration did not profile the way it claims to."""
    bad = None
    if name == "jeprof" and "opt.prof=Ok(true)" not in check:
        bad = "jemalloc profiling is not on (is _RJEM_MALLOC_CONF read?)"
    if name == "jeprof-built-off" and "opt.prof=Ok(false)" not in check:
        bad = "jemalloc profiling should be off"
    if name == "mapprof" and re.search(r"samples=0\b", check):
        bad = "mapprof took no samples"
    if name == "mapprof-off" and not re.search(r"samples=0\b", check):
        bad = "mapprof sampled with heap_rate=0"
    if name == "pprof-alloc" and "backend=wrapper" not in check:
        bad = "pprof-alloc is not using its wrapper sampler"
    if bad:
        raise SystemExit(f"{name}: {bad}: {check}")


def timed_rounds():
    names = [c[0] for c in CONFIGS]
    mops = {(n, w): [] for n in names for w in OPS}
    checks = {}
    n = len(CONFIGS)
    for r in range(ROUNDS):
        order = CONFIGS[r % n:] + CONFIGS[:r % n]
        workloads = list(OPS) if r % 2 == 0 else list(OPS)[::-1]
        for cfg in order:
            for w in workloads:
                ops = max(1000, int(OPS[w] * SCALE / cfg[5]))
                fields, check = run_once(cfg, w, THREADS, ops)
                mops[(cfg[0], w)].append(float(fields["mops"]))
                if (cfg[0], w) not in checks:
                    sanity(cfg[0], check or "")
                    checks[(cfg[0], w)] = check
        log(f"   round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{c[0]} {mops[(c[0], 'mixed')][-1]:.2f}/{mops[(c[0], 'hashmap')][-1]:.2f}"
            for c in CONFIGS))
    return mops, checks


def count_instructions(run, out, annotate_to=None):
    """Runs `run(prefix)` under callgrind, counting only inside `bench_measured_*` (no start-up,
    warm-up or output), into the file `out`. Returns (instructions, what `run` returned) and,
    if asked, writes a `callgrind_annotate` listing to `annotate_to`."""
    vg = shutil.which("valgrind")
    if not vg:
        raise SystemExit("valgrind not found (apt-get install -y valgrind)")
    result = run([vg, "--tool=callgrind", "--collect-atstart=no",
                  "--toggle-collect=bench_measured_*", f"--callgrind-out-file={out}"])
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    if total is None:
        raise SystemExit(f"no totals in {out}")
    if annotate_to:
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", out],
                             capture_output=True, text=True)
        with open(annotate_to, "w") as f:
            f.write(ann.stdout)
    return total, result


def callgrind():
    ir = {}
    for cfg in CONFIGS:
        name = cfg[0]
        for w in CG_OPS:
            ops = max(1000, int(CG_OPS[w] * SCALE / CG_DIVISOR.get(name, 1)))
            t0 = time.time()
            total, (fields, _) = count_instructions(
                lambda prefix: run_once(cfg, w, 1, ops, extra=["--no-check"], prefix=prefix),
                os.path.join(RESULTS, f"callgrind.{name}.{w}.out"),
                os.path.join(RESULTS, f"annotate.{name}.{w}.txt") if name == "mapprof" else None)
            done = int(fields["ops"])
            ir[(name, w)] = (total / done, done)
            log(f"   callgrind {name} {w}: {total / done:.1f} Ir/op over {done} ops "
                f"({time.time() - t0:.0f} s)")
    return ir


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "n/a"

    return {
        "nproc": out(["nproc"]),
        "cpu": cpu,
        "kernel": platform.release(),
        "rustc": out(["rustc", "--version"]),
        "valgrind": out(["valgrind", "--version"]),
        "load": " ".join(open("/proc/loadavg").read().split()[:3]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "dirty": out(["git", "-C", ROOT, "status", "--porcelain", "--", "crates", "Cargo.toml"]),
    }


def fmt_ratio(x):
    return f"{x:.3f}"


def report(mops, ir, checks, mach, elapsed):
    base = {w: statistics.median(mops[("jemalloc", w)]) for w in OPS}
    lines = []
    dirty = " (with uncommitted changes under crates/)" if mach["dirty"] else ""
    lines.append(f"Measured {mach['date']} at commit `{mach['commit']}`{dirty} on {mach['nproc']} CPUs "
                 f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}, {mach['valgrind']}; "
                 f"load average at start {mach['load']}. {ROUNDS} rounds, {THREADS} threads; "
                 f"whole run {elapsed / 60:.1f} min.")
    lines.append("")
    lines.append("Throughput in million operations per second (median of the rounds, min–max in "
                 "brackets). *ratio* = median ÷ median of bare jemalloc; *paired* = median over "
                 "rounds of (config ÷ jemalloc in the same round). *Ir/op* = instructions per "
                 "operation under callgrind (1 thread); *Ir ratio* = jemalloc's Ir/op ÷ the "
                 "config's (higher is better, 1 = no overhead).")
    lines.append("")
    for w, title in (("mixed", "mixed-size alloc/free, 2 threads (op = 1 alloc + 1 free)"),
                     ("hashmap", "HashMap rebuild, 2 threads (op = 1 entry copied)")):
        lines.append(f"**{title}**")
        lines.append("")
        lines.append("| config | Mops/s median | [min–max] | ratio | paired | Ir/op | Ir ratio |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        base_runs = mops[("jemalloc", w)]
        for cfg in CONFIGS:
            n = cfg[0]
            runs = mops[(n, w)]
            med = statistics.median(runs)
            paired = statistics.median(x / b for x, b in zip(runs, base_runs))
            if ir:
                iro, _ = ir[(n, w)]
                irs = f"{iro:,.1f}"
                irr = fmt_ratio(ir[("jemalloc", w)][0] / iro)
            else:
                irs = irr = "—"
            lines.append(f"| {n} | {med:.2f} | [{min(runs):.2f}–{max(runs):.2f}] | "
                         f"{fmt_ratio(med / base[w])} | {fmt_ratio(paired)} | {irs} | {irr} |")
        lines.append("")
    if ir:
        notes = ", ".join(f"{n} {ir[(n, 'mixed')][1]:,} / {ir[(n, 'hashmap')][1]:,}"
                          for n in (c[0] for c in CONFIGS) if CG_DIVISOR.get(n))
        lines.append(f"Callgrind counts operations of one thread on the main thread "
                     f"({CG_OPS['mixed']:,} mixed / {CG_OPS['hashmap'] // 4096 * 4096:,} hashmap "
                     f"operations; fewer for {notes}), only inside the measured functions "
                     f"(`--toggle-collect=bench_measured_*`): no start-up, warm-up or profile "
                     f"output.")
        lines.append("")

    # Targets, checked on both measures.
    lines.append("**Targets** (wall-clock median ratio / callgrind Ir ratio):")
    lines.append("")

    def both(n, w):
        r = statistics.median(mops[(n, w)]) / base[w]
        i = ir[("jemalloc", w)][0] / ir[(n, w)][0] if ir else None
        return r, i

    def verdict(ok):
        return "met" if ok else "**MISSED**"

    for n, goal in (("mapprof", 0.97), ("mapprof-off", 0.995)):
        for w in OPS:
            r, i = both(n, w)
            parts = [f"wall {r:.3f} {verdict(r >= goal)}"]
            if i is not None:
                parts.append(f"Ir {i:.3f} {verdict(i >= goal)}")
            lines.append(f"- {n} ≥ {goal} × jemalloc on {w}: " + "; ".join(parts))
    for w in OPS:
        r, i = both("mapprof", w)
        peers = {p: both(p, w) for p in PEERS}
        wall_ok = all(r > pr for pr, _ in peers.values())
        parts = [f"wall {verdict(wall_ok)} ("
                 + ", ".join(f"{p} {pr:.3f}" for p, (pr, _) in peers.items()) + ")"]
        if i is not None:
            ir_ok = all(i > pi for _, pi in peers.values())
            parts.append(f"Ir {verdict(ir_ok)} ("
                         + ", ".join(f"{p} {pi:.3f}" for p, (_, pi) in peers.items()) + ")")
        lines.append(f"- mapprof less overhead than every peer on {w}: " + "; ".join(parts))
    lines.append("")
    lines.append("Sanity checks printed by the binaries after their first run:")
    lines.append("")
    for cfg in CONFIGS:
        n = cfg[0]
        lines.append(f"- {n}: mixed `{checks.get((n, 'mixed'))}`; "
                     f"hashmap `{checks.get((n, 'hashmap'))}`")
    return "\n".join(lines)


def replace_section(begin, end, figures, writer, what):
    """Rewrites the part of BENCHMARKS.md between the `begin` and `end` markers."""
    if os.path.exists(DOC):
        text = open(DOC).read()
    else:
        text = f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        raise SystemExit(f"{DOC} has no {begin} ... {end} section to rewrite")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(DOC, "w") as f:
        f.write(f"{head}{begin}\n<!-- written by {writer}; do not edit by hand -->\n\n"
                f"{figures.rstrip()}\n\n{end}{tail}")
    log(f"== wrote the {what} of {DOC}")


def publish(figures, results_name, begin, end, writer, what):
    """Prints `figures`, keeps them in bench/results/`results_name` and, unless the run is quick
    or BENCH_NO_WRITE=1, rewrites their section of BENCHMARKS.md."""
    print(figures)
    with open(os.path.join(RESULTS, results_name), "w") as f:
        f.write(figures + "\n")
    if not QUICK and os.environ.get("BENCH_NO_WRITE") != "1":
        replace_section(begin, end, figures, writer, what)


def write_doc(figures):
    replace_section(BEGIN, END, figures, "bench/run.py", "figures section")


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    log(f"== timed runs: {ROUNDS} rounds x {len(CONFIGS)} configs x {len(OPS)} workloads")
    mops, checks = timed_rounds()
    ir = {}
    if os.environ.get("BENCH_NO_CALLGRIND") != "1":
        log("== callgrind (1 thread)")
        ir = callgrind()
    figures = report(mops, ir, checks, mach, time.time() - t0)
    print(figures)
    with open(os.path.join(RESULTS, "figures.md"), "w") as f:
        f.write(figures + "\n")
    with open(os.path.join(RESULTS, "runs.tsv"), "w") as f:
        f.write("config\tworkload\tround\tmops\n")
        for (n, w), runs in mops.items():
            for i, x in enumerate(runs):
                f.write(f"{n}\t{w}\t{i + 1}\t{x}\n")
    if not QUICK and os.environ.get("BENCH_NO_WRITE") != "1":
        write_doc(figures)
    if os.environ.get("BENCH_NO_LOCKS") != "1":
        import locks  # bench/locks.py; its binaries were built above with the bench workspace
        locks.main(build_first=False)
    if os.environ.get("BENCH_NO_SERVICE") != "1":
        import service  # bench/service.py; builds fixtures/cache-service itself
        service.main()
    if os.environ.get("BENCH_NO_SCRAPE") != "1":
        import scrape  # bench/scrape.py; builds bench-scrape itself
        scrape.main()
    if os.environ.get("BENCH_NO_FOOTPRINT") != "1":
        import footprint  # bench/footprint.py; the service part's builds (built if not yet)
        footprint.main()
    if os.environ.get("BENCH_NO_PUSH") != "1":
        import push  # bench/push.py; the service part's builds (built if not yet)
        push.main()
    if os.environ.get("BENCH_NO_CPU") != "1":
        import cpu  # bench/cpu.py; builds bench-cpu and bench/peers/pprof-cpu itself
        cpu.main()
    if os.environ.get("BENCH_NO_TESTING") != "1":
        import testing  # bench/testing.py; builds bench/testing itself
        testing.main()


if __name__ == "__main__":
    main()
