#!/usr/bin/env python3
"""mapprof's service benchmark driver (the service part of `make bench`; bench/run.py calls it
after the lock part, or run it alone with bench/service.sh). It measures what the profiler costs
a real service: the incident's HTTP cache service (fixtures/cache-service, hyper on tokio) built
twice from one source,

  bare      `cargo build --release -p cache-service`: jemalloc, std::sync locks, no profiler;
  profiled  the same with `--features push` (profiling; the pusher idle unless `MAPPROF` asks): mapprof's allocator wrapper over jemalloc and
            mapprof::sync locks, heap, mutex and block profiling at mapprof's defaults
            (`MAPPROF` unset: heap_rate 524288, mutex_fraction 10, block_rate 10000 ns), every
            request labelled (trace_id, route),
  profiled-all  the profiled binary with every profile on (issue 6): `MAPPROF=http=127.0.0.1:P`
            (a free port picked per run) so that /debug/pprof is served, and during each
            measured window a CPU profile at 99 Hz covering it
            (`GET /debug/pprof/profile?seconds=<measured>`, sent when the warm-up ends), besides
            heap, locks and labels as above; the CPU profile must come back (HTTP 200, a
            decodable profile with samples) or the driver stops,
  profiled-http  the profiled binary with the HTTP server on as in profiled-all but no CPU
            profile: profiled-all ÷ profiled-http in the same round is the service's QPS with a
            99 Hz CPU profile running ÷ without it (target >= 0.97),

each copied to bench/results/ (cache-service-bare, cache-service-profiled). A run starts
`cache-service serve --mode M --addr 127.0.0.1:0` as its own process, loads it with the bare
binary's `cache-service load` (the same closed-loop client for both builds), then stops it with
SIGTERM. Every round runs every mode (regressed, fixed, async-regressed) with every build, the two builds of a mode back to back;
the table gives per mode the median QPS of each build, the ratio of the medians, the median of
the per-round ratios ("paired"), p99 latency, the server's and the client's CPU time per
request, and a verdict against the issue's target (profiled and profiled-all QPS >= 0.95 x
bare, each mode), and against the CPU sampler's (profiled-all >= 0.97 x profiled-http: the
same binary and settings, with and without a 99 Hz CPU profile running).
Rewrites the service figures of BENCHMARKS.md (between its `service:begin` / `service:end`
markers).

Before the timed rounds, an untimed check: each mode once with the profiled binary and
`MAPPROF=dump_dir=...` (defaults otherwise), whose dumped profiles must hold heap samples at
period 524288, name mutex_fraction 10 and block_rate 10000, and (both regressed modes) record lock
contention; and the bare binary must refuse to write profiles. The driver stops if a check fails,
and if any timed run answers a request with a non-2xx status, has a connection error or counts
no requests.

Environment (all optional; the same variables as bench/run.py):
  BENCH_ROUNDS=7          timed rounds; each runs 3 modes x 4 builds, 5 s measured + 1 s warm-up
  BENCH_QUICK=1           3 rounds of 2 s (a smoke test; figures not written)
  BENCH_NO_BUILD=1        use the binaries already in bench/results/
  BENCH_NO_WRITE=1        do not touch BENCHMARKS.md
  BENCH_JOBS=2            cargo -j
"""

import glob
import gzip
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from run import BENCH, JOBS, QUICK, RESULTS, ROOT, ROUNDS, log, machine, replace_section

BEGIN, END = "<!-- service:begin -->", "<!-- service:end -->"

# The incident's two modes, and its async form (the map behind `mapprof::tokio::RwLock`).
MODES = ["regressed", "fixed", "async-regressed"]
BUILDS = ["bare", "profiled", "profiled-http", "profiled-all"]
# The binaries: profiled-http and profiled-all run the profiled binary.
BINARY = {"bare": "bare", "profiled": "profiled", "profiled-http": "profiled",
          "profiled-all": "profiled"}
PROFILED = ["profiled", "profiled-http", "profiled-all"]
# The HTTP server on (MAPPROF=http=...); a CPU profile over the window for profiled-all only.
WITH_HTTP = ["profiled-http", "profiled-all"]
# QPS with a CPU profile running ÷ without it (profiled-all ÷ profiled-http), same run.
CPU_TARGET = 0.97
DURATION_S = 2 if QUICK else 5
WARMUP_S = 1
TARGET = 0.95
# mapprof's defaults, as the profiled server must run them.
HEAP_RATE, MUTEX_FRACTION, BLOCK_RATE = 524288, 10, 10000

SERVING_RE = re.compile(r"^cache-service: serving (\S+) on http://(\S+)\s*$", re.M)


def binary(build):
    return os.path.join(RESULTS, f"cache-service-{build}")


BUILT = False  # set once build() ran in this process (bench/footprint.py reuses the builds)


def build():
    """Both builds write target/release/cache-service: build one, copy it, build the other."""
    global BUILT
    # `push` (profiling and the pusher, idle unless `MAPPROF` asks): bench/push.py's too.
    for b, features in (("bare", []), ("profiled", ["--features", "push"])):
        cmd = ["cargo", "build", "--release", f"-j{JOBS}", "-p", "cache-service"] + features
        log(f"== {' '.join(cmd)} (copied to bench/results/cache-service-{b})")
        subprocess.run(cmd, cwd=ROOT, check=True)
        shutil.copy2(os.path.join(ROOT, "target", "release", "cache-service"), binary(b))
    BUILT = True


def server_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k != "MAPPROF"}
    env.update(extra or {})
    return env


def read_until(proc, pattern, timeout):
    """Reads the server's output until `pattern` matches; returns (match, text so far)."""
    text, deadline = "", time.time() + timeout
    while True:
        m = pattern.search(text)
        if m:
            return m, text
        left = deadline - time.time()
        if left <= 0 or proc.poll() is not None:
            return None, text
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
            if not chunk:
                proc.wait(timeout=5)
                return None, text
            text += chunk


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CpuProfile(threading.Thread):
    """Asks the server for a CPU profile of `seconds` once `delay` seconds have passed."""

    def __init__(self, port, delay, seconds):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/debug/pprof/profile?seconds={seconds}"
        self.delay, self.seconds = delay, seconds
        self.status, self.body, self.error, self.started, self.took = None, b"", None, None, None

    def run(self):
        time.sleep(self.delay)
        self.started = time.time()
        try:
            with urllib.request.urlopen(self.url, timeout=self.seconds + 30) as r:
                self.status, self.body = r.status, r.read()
        except Exception as e:  # reported by check_cpu
            self.error = repr(e)
        self.took = time.time() - self.started


def check_cpu(what, cpu):
    if cpu.is_alive():
        raise SystemExit(f"{what}: the CPU profile did not come back")
    if cpu.error or cpu.status != 200 or not cpu.body:
        raise SystemExit(f"{what}: the CPU profile failed: status {cpu.status}, "
                         f"{len(cpu.body)} bytes, {cpu.error}")
    samples, period, _ = read_profile_bytes(cpu.body)
    if samples == 0:
        raise SystemExit(f"{what}: the CPU profile holds no samples")
    return {"cpu_samples": samples, "cpu_ticks": sample_counts(cpu.body), "cpu_period": period,
            "cpu_bytes": len(cpu.body),
            "cpu_took_s": cpu.took}


def serve_and_load(build, mode, duration, warmup, report, env_extra=None):
    """One run: starts `build`'s server in `mode`, loads it with the bare binary's client for
    `warmup` + `duration` seconds, stops it with SIGTERM. Returns (load report, server output);
    the report gains the CPU seconds (user + system) of the server over its whole life and of
    the client (`server_cpu_s`, `client_cpu_s`), and the wall-clock time from the server's start
    to its exit (`wall_s`)."""
    what = f"{mode}/{build}"
    cpu = None
    if build in WITH_HTTP:
        port = free_port()
        env_extra = dict(env_extra or {}, MAPPROF=f"http=127.0.0.1:{port}")
    t0 = time.time()
    proc = subprocess.Popen([binary(BINARY[build]), "serve", "--mode", mode, "--addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=server_env(env_extra))
    try:
        m, out = read_until(proc, SERVING_RE, 30)
        if not m:
            raise SystemExit(f"{what}: the server did not say where it serves:\n{out}")
        if m.group(1) != mode:
            raise SystemExit(f"{what}: the server serves {m.group(1)}, not {mode}:\n{out}")
        if build == "profiled-all":
            cpu = CpuProfile(port, warmup, duration)
            cpu.start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = subprocess.run(
            [binary("bare"), "load", "--target", m.group(2), "--duration", f"{duration}s",
             "--warmup", f"{warmup}s", "--report", report],
            capture_output=True, text=True, env=server_env(), timeout=duration + warmup + 60)
        # The client is the only child reaped in between: its user + system time.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if cpu is not None:
            cpu.join(timeout=60)
        if load.returncode != 0:
            raise SystemExit(f"{what}: the load generator failed ({load.returncode}):\n"
                             f"{load.stdout}\n{load.stderr}")
        rss_anon_kib = None
        try:  # the server's anonymous memory at the end of the load
            with open(f"/proc/{proc.pid}/status") as f:
                rss_anon_kib = int(re.search(r"RssAnon:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
        proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        while True:  # read the rest of its output (EOF when it exits)
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise SystemExit(f"{what}: the server did not stop within 30 s of SIGTERM:\n{out}")
            chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
            if not chunk:
                break
            out += chunk
        # Reap it ourselves to read its CPU time (user + system, whole process life).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or "cache-service: stopping" not in out:
            raise SystemExit(f"{what}: the server did not stop cleanly "
                             f"(exit {proc.returncode}):\n{out}")
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    with open(report) as f:
        rep = json.load(f)
    rep["server_cpu_s"] = usage.ru_utime + usage.ru_stime
    rep["client_cpu_s"] = client_cpu
    rep["wall_s"] = time.time() - t0
    rep["rss_anon_kib"] = rss_anon_kib
    if cpu is not None:
        rep.update(check_cpu(what, cpu))
    return rep, out


def check_load(what, rep):
    """Fails loudly when a run did not measure what it claims to."""
    bad = None
    if rep["requests"] <= 0:
        bad = "no requests counted"
    elif rep["failed"] != 0:
        bad = f"{rep['failed']} requests answered with a non-2xx status"
    elif rep["connection_errors"] != 0:
        bad = f"{rep['connection_errors']} connection errors"
    if bad:
        raise SystemExit(f"{what}: {bad}: {json.dumps(rep)}")


# --- reading the dumped profiles (gzipped protobuf, profile.proto): just enough of the wire
# format to count samples and read the period and the comments.

def _varint(b, i):
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, v


def read_profile(path):
    """(samples, period, comments) of a pprof profile."""
    with open(path, "rb") as f:
        return read_profile_bytes(f.read())


def read_profile_bytes(data):
    """(samples, period, comments) of a pprof profile, gzipped or not."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    samples, period, strings, comment_ids = 0, 0, [], []
    for field, wire, v in _fields(data):
        if field == 2:  # sample
            samples += 1
        elif field == 6:  # string_table
            strings.append(v.decode(errors="replace"))
        elif field == 12:  # period
            period = v
        elif field == 13:  # comment: indices into string_table, packed or not
            if wire == 2:
                j = 0
                while j < len(v):
                    x, j = _varint(v, j)
                    comment_ids.append(x)
            else:
                comment_ids.append(v)
    return samples, period, [strings[i] for i in comment_ids]


def sample_counts(data):
    """Sum over the samples of each sample's first value (for a CPU profile: the SIGPROF ticks)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    total = 0
    for field, _, v in _fields(data):
        if field != 2:
            continue
        for f, wire, x in _fields(v):
            if f != 2:
                continue
            if wire == 2:  # packed values: the first
                total += _varint(x, 0)[0]
            else:
                total += x
            break
    return total


def check_profiler():
    """Untimed: the profiled server profiles at mapprof's defaults; the bare one cannot."""
    out = os.path.join(RESULTS, "service-check")
    p = subprocess.run([binary("bare"), "run", "--mode", "fixed", "--out", out],
                       capture_output=True, text=True, env=server_env())
    if p.returncode == 0 or "no profiler" not in p.stderr:
        raise SystemExit(f"the bare binary should have no profiler:\n{p.stdout}\n{p.stderr}")
    found = {}
    for mode in MODES:
        dump = os.path.join(out, mode)
        shutil.rmtree(dump, ignore_errors=True)
        os.makedirs(dump)
        rep, _ = serve_and_load("profiled", mode, 1, 0, os.path.join(dump, "load.json"),
                                   {"MAPPROF": f"dump_dir={dump}"})
        check_load(f"{mode}/profiled (check)", rep)
        prof = {}
        for kind in ("allocs", "mutex", "block"):
            files = glob.glob(os.path.join(dump, f"{kind}.*.pb.gz"))
            if len(files) != 1:
                raise SystemExit(f"{mode}/profiled: expected one dumped {kind} profile in "
                                 f"{dump}, found {files}")
            prof[kind] = read_profile(files[0])
        bad = []
        if prof["allocs"][0] == 0 or prof["allocs"][1] != HEAP_RATE:
            bad.append(f"allocs: {prof['allocs'][0]} samples at period {prof['allocs'][1]} "
                       f"(want > 0 at {HEAP_RATE})")
        if not any(f"mutex_fraction: {MUTEX_FRACTION}" in c for c in prof["mutex"][2]):
            bad.append(f"mutex profile comments {prof['mutex'][2]} lack mutex_fraction "
                       f"{MUTEX_FRACTION}")
        if not any(f"block_rate: {BLOCK_RATE} ns" in c for c in prof["block"][2]):
            bad.append(f"block profile comments {prof['block'][2]} lack block_rate {BLOCK_RATE}")
        if mode.endswith("regressed") and prof["mutex"][0] + prof["block"][0] == 0:
            bad.append("no lock contention recorded under the regressed cache's global lock")
        if bad:
            raise SystemExit(f"{mode}/profiled does not profile as it should: " + "; ".join(bad))
        found[mode] = {k: v[0] for k, v in prof.items()}
        log(f"   check {mode}/profiled: samples " + ", ".join(
            f"{k} {v}" for k, v in found[mode].items()) + f" ({rep['requests']} requests)")
    return found


def timed_rounds():
    res = {(m, b): [] for m in MODES for b in BUILDS}
    json_dir = os.path.join(RESULTS, "service-runs")
    os.makedirs(json_dir, exist_ok=True)
    for r in range(ROUNDS):
        # Modes alternate which goes first; the builds of a mode run back to back, their order
        # rotating by one each round (bare, profiled, profiled-http, profiled-all; then
        # profiled, profiled-http, profiled-all, bare; ...): over four rounds every build takes
        # every position in its mode's sequence.
        modes = MODES[r % 2:] + MODES[:r % 2]
        k = r % len(BUILDS)
        builds = BUILDS[k:] + BUILDS[:k]
        for m in modes:
            for b in builds:
                report = os.path.join(json_dir, f"r{r + 1}.{m}.{b}.json")
                rep, _ = serve_and_load(b, m, DURATION_S, WARMUP_S, report)
                check_load(f"round {r + 1} {m}/{b}", rep)
                res[(m, b)].append(rep)
        log(f"   round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{m} " + "/".join(f"{res[(m, b)][-1]['qps']:.0f}" for b in BUILDS)
            for m in MODES) + "  (QPS " + "/".join(BUILDS) + ")")
    return res


def med(xs):
    return statistics.median(xs)


def dirty_paths():
    """What the builds read that differs from the commit: crates/<name>/, the fixture,
    Cargo.toml, Cargo.lock."""
    out = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates",
                          "fixtures/cache-service", "Cargo.toml", "Cargo.lock"],
                         capture_output=True, text=True).stdout
    paths = set()
    for line in out.splitlines():
        parts = line[3:].strip().split("/")
        paths.add("/".join(parts[:2]) + "/" if len(parts) > 2 else "/".join(parts))
    return sorted(paths)


def report(res, checked, mach, dirty, elapsed):
    L = []
    d = f" (with uncommitted changes in {', '.join(dirty)})" if dirty else ""
    L.append(f"Measured {mach['date']} at commit `{mach['commit']}`{d} on {mach['nproc']} CPUs "
             f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}; load average at start "
             f"{mach['load']}. {ROUNDS} rounds of {len(MODES)} modes × {len(BUILDS)} builds, each run "
             f"{WARMUP_S} s warm-up + {DURATION_S} s measured, 16 connections, 5% writes, "
             f"2,000 keys; service part {elapsed / 60:.1f} min.")
    L.append("")
    L.append("Per run: QPS = requests completed in the measured window ÷ its length; p99 = the "
             "run's 99th-percentile latency. Columns give the median over rounds, min–max in "
             "brackets. *server CPU* = the server process's user + system time over its whole "
             "life ÷ every request it answered (warm-up included), µs; *client CPU* the same for "
             "the load generator; *CPUs used* = server + client CPU time ÷ the wall-clock time "
             "from the server's start to its exit (of the machine's "
             f"{mach['nproc']}). *requests* = counted requests summed over the rounds (median "
             "per run in brackets).")
    L.append("")
    L.append("| mode | build | QPS | [min–max] | p99 ms | [min–max] | server CPU µs/req | "
             "client CPU µs/req | CPUs used | requests |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for m in MODES:
        for b in BUILDS:
            runs = res[(m, b)]
            qps = [x["qps"] for x in runs]
            p99 = [x["p99_us"] / 1000 for x in runs]
            cpu = [x["server_cpu_s"] * 1e6 / x["answered"] for x in runs]
            ccpu = [x["client_cpu_s"] * 1e6 / x["answered"] for x in runs]
            used = [(x["server_cpu_s"] + x["client_cpu_s"]) / x["wall_s"] for x in runs]
            req = [x["requests"] for x in runs]
            L.append(f"| {m} | {b} | {med(qps):,.0f} | [{min(qps):,.0f}–{max(qps):,.0f}] | "
                     f"{med(p99):.2f} | [{min(p99):.2f}–{max(p99):.2f}] | {med(cpu):.1f} | "
                     f"{med(ccpu):.1f} | {med(used):.2f} | {sum(req):,} ({med(req):,.0f}) |")
    L.append("")
    L.append("profiled ÷ bare and profiled-all ÷ bare, per mode: *ratio* = ratio of the median "
             "QPS; *paired* = median over rounds of the ratio within a round (the builds of a "
             "mode run back to back), min–max in brackets; p99 and server CPU per request as "
             "ratios of medians. *profiled* = heap, mutex, block profiling and labels at "
             "mapprof's defaults; *profiled-http* = the same binary with the /debug/pprof HTTP "
             "server on (`MAPPROF=http=127.0.0.1:P`); *profiled-all* = the same with a 99 Hz "
             "CPU profile (`/debug/pprof/profile?seconds=N`) covering each measured window.")
    L.append("")
    L.append("| mode | build | QPS ratio | paired | [min–max] | p99 ratio | server CPU ratio |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    for m, pb in [(m, pb) for m in MODES for pb in PROFILED]:
        bare, prof = res[(m, "bare")], res[(m, pb)]
        ratio = med([x["qps"] for x in prof]) / med([x["qps"] for x in bare])
        pairs = [p["qps"] / b["qps"] for b, p in zip(bare, prof)]
        paired = med(pairs)
        p99 = med([x["p99_us"] for x in prof]) / med([x["p99_us"] for x in bare])
        cpu = (med([x["server_cpu_s"] / x["answered"] for x in prof])
               / med([x["server_cpu_s"] / x["answered"] for x in bare]))
        L.append(f"| {m} | {pb} | {ratio:.3f} | {paired:.3f} | "
                 f"[{min(pairs):.3f}–{max(pairs):.3f}] | {p99:.3f} | {cpu:.3f} |")
        verdicts.append((m, pb, ratio, paired))
    L.append("")

    def verdict(x):
        return "met" if x >= TARGET else "**MISSED**"

    L.append(f"**Target** (QPS ≥ {TARGET} × bare, each mode; issue 6: with every profile on, "
             "i.e. profiled-all):")
    L.append("")
    for m, pb, ratio, paired in verdicts:
        L.append(f"- {m}, {pb}: ratio of medians {ratio:.3f} {verdict(ratio)}; paired "
                 f"{paired:.3f} {verdict(paired)}")
    L.append("")
    L.append("**With a CPU profile running ÷ without it**: profiled-all ÷ profiled-http (the same "
             "binary and settings, HTTP server on in both; only the 99 Hz CPU profile over the "
             "window differs), same rounds; columns as above.")
    L.append("")
    L.append("| mode | QPS ratio | paired | [min–max] | p99 ratio | server CPU ratio | verdict "
             f"(≥ {CPU_TARGET}) |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for m in MODES:
        base, prof = res[(m, "profiled-http")], res[(m, "profiled-all")]
        ratio = med([x["qps"] for x in prof]) / med([x["qps"] for x in base])
        pairs = [p["qps"] / b["qps"] for b, p in zip(base, prof)]
        paired = med(pairs)
        p99 = med([x["p99_us"] for x in prof]) / med([x["p99_us"] for x in base])
        cpu = (med([x["server_cpu_s"] / x["answered"] for x in prof])
               / med([x["server_cpu_s"] / x["answered"] for x in base]))
        ok = "met" if ratio >= CPU_TARGET and paired >= CPU_TARGET else (
            "**MISSED**" if ratio < CPU_TARGET and paired < CPU_TARGET else
            "**MISSED** on one of the two")
        L.append(f"| {m} | {ratio:.3f} | {paired:.3f} | [{min(pairs):.3f}–{max(pairs):.3f}] | "
                 f"{p99:.3f} | {cpu:.3f} | {ok} |")
    L.append("")
    cpu_runs = [x for m in MODES for x in res[(m, "profiled-all")]]
    if cpu_runs:
        smp = [x["cpu_samples"] for x in cpu_runs]
        L.append(f"CPU profiles of the profiled-all runs: {len(cpu_runs)}, every one HTTP 200 "
                 f"and parsed, period {cpu_runs[0]['cpu_period']:,} ns (99 Hz), "
                 f"{min(smp):,}–{max(smp):,} distinct stacks (median {med(smp):,.0f}) holding "
                 f"{med([x['cpu_ticks'] for x in cpu_runs]):,.0f} ticks (median; 99 Hz × "
                 f"{DURATION_S} s × the CPU time the server used), "
                 f"{med([x['cpu_bytes'] for x in cpu_runs]):,.0f} bytes gzipped (median), "
                 f"answered {med([x['cpu_took_s'] for x in cpu_runs]):.2f} s after being asked "
                 "(median).")
        L.append("")
    L.append("Profiler check before the rounds (profiled binary, `MAPPROF=dump_dir=…` only, "
             "1 s of load; samples in the dumped profiles): " + "; ".join(
                 f"{m}: " + ", ".join(f"{k} {v}" for k, v in checked[m].items())
                 for m in MODES)
             + f". All at heap_rate {HEAP_RATE}, mutex_fraction {MUTEX_FRACTION}, block_rate "
             f"{BLOCK_RATE} ns; the bare binary refuses to write profiles.")
    return "\n".join(L)


def write_tsv(res):
    with open(os.path.join(RESULTS, "service.tsv"), "w") as f:
        f.write("mode\tbuild\tround\tqps\tp50_us\tp99_us\tp999_us\tmax_us\trequests\twrites\t"
                "answered\tfailed\tconnection_errors\tserver_cpu_s\tclient_cpu_s\twall_s\n")
        for (m, b), runs in res.items():
            for i, x in enumerate(runs):
                f.write(f"{m}\t{b}\t{i + 1}\t{x['qps']}\t{x['p50_us']}\t{x['p99_us']}\t"
                        f"{x['p999_us']}\t{x['max_us']}\t{x['requests']}\t{x['writes']}\t"
                        f"{x['answered']}\t{x['failed']}\t{x['connection_errors']}\t"
                        f"{x['server_cpu_s']:.3f}\t{x['client_cpu_s']:.3f}\t{x['wall_s']:.3f}\n")


def write_doc(figures):
    replace_section(BEGIN, END, figures, "bench/service.py", "service figures")


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    dirty = dirty_paths()
    if os.environ.get("BENCH_NO_BUILD") != "1":
        build()
    for b in ("bare", "profiled"):
        if not os.path.exists(binary(b)):
            raise SystemExit(f"{binary(b)} is missing: run without BENCH_NO_BUILD=1 once")
    log("== service check: the profiled server profiles at mapprof's defaults")
    checked = check_profiler()
    log(f"== service timed runs: {ROUNDS} rounds x {len(MODES)} modes x {len(BUILDS)} builds, "
        f"{WARMUP_S} s + {DURATION_S} s each")
    res = timed_rounds()
    write_tsv(res)
    figures = report(res, checked, mach, dirty, time.time() - t0)
    print(figures)
    with open(os.path.join(RESULTS, "service.md"), "w") as f:
        f.write(figures + "\n")
    if not QUICK and os.environ.get("BENCH_NO_WRITE") != "1":
        write_doc(figures)


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
