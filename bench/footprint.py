#!/usr/bin/env python3
"""mapprof's footprint benchmark (the footprint part of `make bench`; bench/run.py calls it after
the scrape part, BENCH_NO_FOOTPRINT=1 skips it, bench/footprint.sh runs it alone). Issue "A
profiler you can leave on": mapprof's own anonymous memory is at most 16 MiB above the bare build
at any moment (its fixed tables as touched included), back to at most 4 MiB above within 1 s
after a scrape or a profile ends, and does not grow across repeated profiles.

What runs: the incident's cache service (fixtures/cache-service) in its fixed mode, the two
builds of bench/service.py (it builds and copies them: bench/results/cache-service-bare and
-profiled), one after the other, each `cache-service serve --mode fixed --addr 127.0.0.1:0` as
its own process; the profiled one with `MAPPROF=http=127.0.0.1:P` (a free port; mapprof's
defaults otherwise: heap_rate 524288, mutex_fraction 10, block_rate 10000 ns). The load is the
bare binary's `cache-service load` (16 connections, 5% writes, 2,000 keys, as in the service
part), relaunched every 10 s (`--duration 10s --warmup 0s`) from the start of the *load* phase to
the end, each report checked (requests counted, no non-2xx answer, no connection error).

Timeline (profiled first; the bare run then sleeps through the same phases for the durations the
profiled run took, under the same load, since the bare build has no /debug/pprof):

  idle        3 s, no load
  load        5 s of load
  scrape      one GET /debug/pprof/heap (the first: it symbolizes), then 1 s (*1 s after*)
  cpu         one GET /debug/pprof/profile?seconds=30 (99 Hz), then 1 s
  scrapes     100 GET /debug/pprof/heap back to back (1 s pause after the first, read at its
              end), then 1 s after the last
  profiles    100 GET /debug/pprof/profile?seconds=1 back to back (1 s pause after the first),
              then 1 s after the last

Every answer must be HTTP 200 and decode as a profile (the CPU ones with samples) or the driver
stops. Memory: a thread of the driver reads the server's /proc/PID/status every 50 ms (VmRSS,
RssAnon; each reading tagged with its phase); the driver also reads it at each marked moment
(*1 s after* a scrape or profile ends: the reading taken 1.0 s after its answer's last byte; the
first and the last of the repeated ones: 1 s after each), and resets the server's peak RSS
(/proc/PID/clear_refs = 5) at the start of each phase so that VmHWM at its end is the phase's
exact peak VmRSS (a 50 ms reading can miss a shorter peak; VmHWM cannot, but it counts file
pages too). *difference* = profiled − bare: for a phase, the profiled build's peak in it minus the
bare build's median in the same phase; for a marked moment, the profiled reading minus the bare
reading at the same moment; *max at any moment* = the largest profiled reading minus the bare
median of its phase, over every phase. Growth = the difference 1 s after the last
repeated scrape (profile) minus 1 s after the first; "no growth" is read as at most 1 MiB
(the readings' noise, a few hundred KiB, and jemalloc's page caching).

Environment (the same variables as bench/run.py, and):
  BENCH_FOOTPRINT_CPU_S=30      the long CPU profile (BENCH_QUICK: 3)
  BENCH_FOOTPRINT_REPEATS=100   repeated scrapes and repeated profiles (BENCH_QUICK: 5)
  BENCH_FOOTPRINT_REPEAT_S=1    seconds of each repeated CPU profile
  BENCH_FOOTPRINT_MODES=fixed,async-regressed  the modes served, one after the other (the
                                second's figures in the section `footprint-async-regressed`)
  BENCH_NO_BUILD=1              use the binaries already in bench/results/
  BENCH_NO_WRITE=1, BENCH_QUICK=1 (figures not written), BENCH_JOBS
Rewrites the `footprint:begin` / `footprint:end` section of BENCHMARKS.md. Takes about 2 × 2.5
minutes with the defaults (most of it the 100 one-second profiles and the 30 s one; a smoke run
with BENCH_FOOTPRINT_CPU_S=10 BENCH_FOOTPRINT_REPEATS=20 took 1.5 minutes).
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from run import BENCH, QUICK, RESULTS, log, machine, publish

# The modes served, each a section of its own: fixed (`footprint`), then async-regressed
# (`footprint-async-regressed`: task labels on every request, the map behind
# `mapprof::tokio::RwLock`), which measures the async paths.
MODES = os.environ.get("BENCH_FOOTPRINT_MODES", "fixed,async-regressed").split(",")
MODE = MODES[0]


def markers(mode):
    name = "footprint" if mode == "fixed" else f"footprint-{mode}"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
CPU_S = int(os.environ.get("BENCH_FOOTPRINT_CPU_S", "3" if QUICK else "30"))
REPEATS = int(os.environ.get("BENCH_FOOTPRINT_REPEATS", "5" if QUICK else "100"))
REPEAT_S = int(os.environ.get("BENCH_FOOTPRINT_REPEAT_S", "1"))
IDLE_S, LOAD_S, AFTER_S, TICK_S, LOAD_SEGMENT_S = 3, 5, 1.0, 0.05, 10
TARGET_MAX_MIB, TARGET_AFTER_MIB, TARGET_GROWTH_MIB = 16, 4, 1
MIB = 1 << 20
BUILDS = ["profiled", "bare"]  # profiled first: bare replays its phase durations


def status(pid):
    """(VmRSS, RssAnon, VmHWM) of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out["VmRSS"], out["RssAnon"], out["VmHWM"]


def cpu_s(pid):
    """The process's user + system CPU time, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_hwm(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Sampler(threading.Thread):
    """Reads the server's VmRSS and RssAnon every TICK_S seconds, tagged with the phase."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.phase, self.samples = pid, "start", []
        self.stop = threading.Event()

    def run(self):
        t0 = time.time()
        while not self.stop.is_set():
            try:
                vm, anon, _ = status(self.pid)
            except (OSError, KeyError):
                break
            self.samples.append((time.time() - t0, self.phase, vm, anon))
            self.stop.wait(TICK_S)


class Load(threading.Thread):
    """The bare binary's load generator, relaunched every LOAD_SEGMENT_S s until stopped."""

    def __init__(self, service, target, tag):
        super().__init__(daemon=True)
        self.service, self.target, self.tag = service, target, tag
        self.stop, self.error, self.reports, self.proc = threading.Event(), None, [], None

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            report = os.path.join(RESULTS, "footprint-runs", f"{self.tag}.load{i}.json")
            self.proc = subprocess.Popen(
                [self.service.binary("bare"), "load", "--target", self.target, "--duration",
                 f"{LOAD_SEGMENT_S}s", "--warmup", "0s", "--report", report],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.service.server_env())
            out, _ = self.proc.communicate()
            if self.stop.is_set() and self.proc.returncode != 0:
                break  # killed when the timeline ended
            if self.proc.returncode != 0:
                self.error = f"load generator failed ({self.proc.returncode}): {out.decode()}"
                return
            with open(report) as f:
                rep = json.load(f)
            if rep["requests"] <= 0 or rep["failed"] or rep["connection_errors"]:
                self.error = f"bad load run: {json.dumps(rep)}"
                return
            self.reports.append(rep)

    def finish(self):
        self.stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.join(timeout=30)
        if self.error:
            raise SystemExit(f"{self.tag}: {self.error}")


def get(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def run_build(service, build, durations):
    """One build's timeline. `durations` is None for the profiled build (it measures them) and
    the profiled build's phase durations for the bare one (which sleeps through them)."""
    what = f"footprint/{build}"
    profiled = build == "profiled"
    env = {}
    if profiled:
        port = service.free_port()
        env = {"MAPPROF": f"http=127.0.0.1:{port}"}
        base = f"http://127.0.0.1:{port}/debug/pprof"
    proc = subprocess.Popen([service.binary(build), "serve", "--mode", MODE, "--addr",
                             "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=service.server_env(env))
    load = None
    marks, phases, hwm, srv_cpu, answers = {}, {}, {}, {}, {}
    measured = {}
    try:
        m, out = service.read_until(proc, service.SERVING_RE, 30)
        if not m:
            raise SystemExit(f"{what}: the server did not say where it serves:\n{out}")
        pid = proc.pid
        sampler = Sampler(pid)
        sampler.start()
        clock = {"phase": None, "t": 0.0, "cpu": 0.0}

        def phase(name):
            now = time.time()
            if clock["phase"] is not None:
                phases[clock["phase"]] = now - clock["t"]
                hwm[clock["phase"]] = status(pid)[2]
                srv_cpu[clock["phase"]] = cpu_s(pid) - clock["cpu"]
            if name is None:
                return
            reset_hwm(pid)
            sampler.phase = name
            clock.update(phase=name, t=now, cpu=cpu_s(pid))

        def mark(name):
            vm, anon, _ = status(pid)
            marks[name] = (vm, anon)

        def hold(name, planned):
            """The bare build: as long as the profiled build took for `name`."""
            time.sleep(durations[name] if durations else planned)

        def heap(tag):
            st, body = get(f"{base}/heap", 60)
            n, _, _ = service.read_profile_bytes(body)
            if st != 200 or n == 0:
                raise SystemExit(f"{what}: heap scrape {tag}: status {st}, {n} samples")
            answers.setdefault("heap", []).append(len(body))

        def cpu(tag, seconds):
            st, body = get(f"{base}/profile?seconds={seconds}", seconds + 60)
            n, _, _ = service.read_profile_bytes(body)
            if st != 200 or n == 0:
                raise SystemExit(f"{what}: CPU profile {tag}: status {st}, {n} samples")
            answers.setdefault("cpu", []).append(service.sample_counts(body))

        def timed(name, f, planned):
            t = time.time()
            if profiled:
                f()
            else:
                hold(name, planned)
            measured[name] = time.time() - t

        phase("idle")
        time.sleep(IDLE_S)
        mark("idle end")
        phase("load")
        load = Load(service, m.group(2), build)
        load.start()
        time.sleep(LOAD_S)
        mark("load end")

        phase("scrape")
        timed("scrape", lambda: heap("1"), 0.2)
        phase("scrape +1 s")
        time.sleep(AFTER_S)
        mark("1 s after the scrape")

        phase("cpu profile")
        timed("cpu profile", lambda: cpu("30 s", CPU_S), CPU_S)
        phase("cpu profile +1 s")
        time.sleep(AFTER_S)
        mark("1 s after the CPU profile")

        phase(f"{REPEATS} scrapes")
        timed("scrapes first", lambda: heap("r1"), 0.1)
        time.sleep(AFTER_S)
        mark("1 s after the first repeated scrape")
        timed("scrapes rest", lambda: [heap(f"r{i}") for i in range(2, REPEATS + 1)],
              0.05 * (REPEATS - 1))
        phase(f"{REPEATS} scrapes +1 s")
        time.sleep(AFTER_S)
        mark("1 s after the last repeated scrape")

        phase(f"{REPEATS} profiles")
        timed("profiles first", lambda: cpu("p1", REPEAT_S), REPEAT_S)
        time.sleep(AFTER_S)
        mark("1 s after the first repeated profile")
        timed("profiles rest", lambda: [cpu(f"p{i}", REPEAT_S) for i in range(2, REPEATS + 1)],
              REPEAT_S * (REPEATS - 1))
        phase(f"{REPEATS} profiles +1 s")
        time.sleep(AFTER_S)
        mark("1 s after the last repeated profile")
        phase(None)
        sampler.stop.set()
        sampler.join(timeout=5)
        load.finish()
        load = None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{what}: the server did not stop within 30 s of SIGTERM")
        if proc.returncode != 0:
            raise SystemExit(f"{what}: the server exited with {proc.returncode}")
    finally:
        if load is not None:
            load.stop.set()
            if load.proc is not None and load.proc.poll() is None:
                load.proc.kill()
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    return {"samples": sampler.samples, "marks": marks, "phases": phases, "hwm": hwm,
            "server_cpu": srv_cpu, "measured": measured, "answers": answers,
            "qps": [r["qps"] for r in load_reports(build)]}


def load_reports(build):
    d = os.path.join(RESULTS, "footprint-runs")
    out = []
    for name in sorted(os.listdir(d)):
        if name.startswith(f"{build}.load") and name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                out.append(json.load(f))
    return out


def mib(x):
    return f"{x / MIB:.1f}"


def dmib(x):
    return f"{x / MIB:+.1f}"


def report(res, mach, elapsed):
    bare, prof = res["bare"], res["profiled"]
    order = list(prof["phases"])
    by_phase = {b: {p: [(vm, anon) for _, ph, vm, anon in res[b]["samples"] if ph == p]
                    for p in order} for b in BUILDS}
    med = statistics.median

    def level(b, p, i):
        xs = [s[i] for s in by_phase[b][p]]
        return med(xs) if xs else None

    def peak(b, p, i):
        xs = [s[i] for s in by_phase[b][p]]
        return max(xs) if xs else None

    L = []
    L.append(f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['nproc']} CPUs "
             f"({mach['cpu']}), Linux {mach['kernel']}, {mach['rustc']}; load average at start "
             f"{mach['load']}. The {MODE}-mode service, profiled (`MAPPROF=http=127.0.0.1:P`, "
             f"defaults otherwise) then bare, under the same load (16 connections, 5% writes); "
             f"long CPU profile {CPU_S} s at 99 Hz; {REPEATS} repeated scrapes and {REPEATS} "
             f"repeated CPU profiles of {REPEAT_S} s each; readings every {TICK_S * 1000:.0f} ms; "
             f"footprint part {elapsed / 60:.1f} min.")
    L.append("")
    L.append("Per phase (MiB): *bare* = the bare build's median reading in the phase; *profiled* "
             "= the profiled build's median and peak reading; *diff* = profiled peak − bare "
             "median; *VmHWM* = the phase's exact peak VmRSS (reset at its start), profiled / "
             "bare. *s* = how long the phase lasted.")
    L.append("")
    L.append("| phase | s | readings | RssAnon bare | profiled median | profiled peak | diff | "
             "VmRSS bare | profiled peak | diff | VmHWM profiled / bare |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst = (None, -1 << 60)
    for p in order:
        n = len(by_phase["profiled"][p])
        if not n or not by_phase["bare"].get(p):
            continue
        ab, ap, apk = level("bare", p, 1), level("profiled", p, 1), peak("profiled", p, 1)
        vb, vpk = level("bare", p, 0), peak("profiled", p, 0)
        L.append(f"| {p} | {prof['phases'][p]:.1f} | {n} | {mib(ab)} | {mib(ap)} | {mib(apk)} | "
                 f"{dmib(apk - ab)} | {mib(vb)} | {mib(vpk)} | {dmib(vpk - vb)} | "
                 f"{mib(prof['hwm'][p])} / {mib(bare['hwm'][p])} |")
        for _, anon in by_phase["profiled"][p]:
            if anon - ab > worst[1]:
                worst = (p, anon - ab)
    L.append("")
    L.append("At marked moments (MiB; each build's own reading at that moment; diff = profiled − "
             "bare):")
    L.append("")
    L.append("| moment | RssAnon bare | profiled | diff | VmRSS bare | profiled | diff |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for k, (vp, ap) in prof["marks"].items():
        vb, ab = bare["marks"][k]
        L.append(f"| {k} | {mib(ab)} | {mib(ap)} | {dmib(ap - ab)} | {mib(vb)} | {mib(vp)} | "
                 f"{dmib(vp - vb)} |")
    L.append("")

    def diff(k):
        return prof["marks"][k][1] - bare["marks"][k][1]

    def v(ok):
        return "met" if ok else "**MISSED**"

    L.append(f"**Targets** (mapprof's own anonymous memory, RssAnon profiled − bare):")
    L.append("")
    L.append(f"- at most {TARGET_MAX_MIB} MiB above bare at any moment: max "
             f"{dmib(worst[1])} MiB (in phase *{worst[0]}*) {v(worst[1] <= TARGET_MAX_MIB * MIB)}")
    for k in ("1 s after the scrape", "1 s after the CPU profile",
              "1 s after the last repeated scrape", "1 s after the last repeated profile"):
        d = diff(k)
        L.append(f"- at most {TARGET_AFTER_MIB} MiB above bare {k}: {dmib(d)} MiB "
                 f"{v(d <= TARGET_AFTER_MIB * MIB)}")
    for what, first, last in (("scrapes", "1 s after the first repeated scrape",
                               "1 s after the last repeated scrape"),
                              ("CPU profiles", "1 s after the first repeated profile",
                               "1 s after the last repeated profile")):
        g = diff(last) - diff(first)
        L.append(f"- no growth across {REPEATS} {what} (≤ {TARGET_GROWTH_MIB} MiB, 1 s after the "
                 f"last − 1 s after the first): {dmib(g)} MiB {v(g <= TARGET_GROWTH_MIB * MIB)}")
    L.append("")
    heap_kib = [x / 1024 for x in prof["answers"].get("heap", [])]
    ticks = prof["answers"].get("cpu", [])
    qb, qp = bare["qps"], prof["qps"]
    L.append(f"Answers: {len(heap_kib)} heap scrapes ({med(heap_kib):.0f} KiB median), "
             f"{len(ticks)} CPU profiles (the {CPU_S} s one {ticks[0]:,} ticks, the "
             f"{REPEAT_S} s ones {med(ticks[1:]) if len(ticks) > 1 else 0:,.0f} median), all HTTP "
             f"200 and decoded. The {REPEATS} scrapes took {prof['measured']['scrapes rest']:.1f} s "
             f"after the first; the {REPEATS} profiles {prof['measured']['profiles rest']:.1f} s "
             f"after the first. Load: {len(qp)} / {len(qb)} segments of {LOAD_SEGMENT_S} s "
             f"(profiled / bare), median QPS {med(qp) if qp else 0:,.0f} / "
             f"{med(qb) if qb else 0:,.0f}. Server CPU in the load phase: "
             f"{prof['server_cpu']['load'] / prof['phases']['load']:.2f} / "
             f"{bare['server_cpu']['load'] / bare['phases']['load']:.2f} CPUs.")
    return "\n".join(L)


def main():
    global MODE
    for MODE in MODES:
        main_mode()


def main_mode():
    import service  # bench/service.py: the builds, the binaries, the HTTP helpers
    t0 = time.time()
    os.makedirs(os.path.join(RESULTS, "footprint-runs"), exist_ok=True)
    for name in os.listdir(os.path.join(RESULTS, "footprint-runs")):
        os.remove(os.path.join(RESULTS, "footprint-runs", name))
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1" and not getattr(service, "BUILT", False):
        service.build()
    for b in ("bare", "profiled"):
        if not os.path.exists(service.binary(b)):
            raise SystemExit(f"{service.binary(b)} is missing: run without BENCH_NO_BUILD=1 once")
    res = {}
    durations = None
    for b in BUILDS:
        log(f"== footprint, {MODE} mode: {b} build (idle {IDLE_S} s, load {LOAD_S} s, scrape, {CPU_S} s CPU "
            f"profile, {REPEATS} scrapes, {REPEATS} x {REPEAT_S} s profiles)")
        res[b] = run_build(service, b, durations)
        if b == "profiled":
            durations = res[b]["measured"]
        last = res[b]["samples"][-1]
        log(f"   {b}: {len(res[b]['samples'])} readings, last RssAnon {mib(last[3])} MiB, "
            f"VmRSS {mib(last[2])} MiB")
    with open(os.path.join(RESULTS, f"footprint-{MODE}.tsv"), "w") as f:
        f.write("build\tt_s\tphase\tvmrss\trssanon\n")
        for b in BUILDS:
            for t, ph, vm, anon in res[b]["samples"]:
                f.write(f"{b}\t{t:.3f}\t{ph}\t{vm}\t{anon}\n")
    figures = report(res, mach, time.time() - t0)
    begin, end = markers(MODE)
    publish(figures, f"footprint-{MODE}.md", begin, end, "bench/footprint.py",
            f"footprint figures ({MODE})")


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
