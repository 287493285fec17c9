#!/usr/bin/env python3
"""The push part of `make bench` (issue 15): what pushing every profile to an engine costs the
incident's service. The profiled build of fixtures/cache-service (bench/service.py's) runs

  profiled       `MAPPROF` unset, as in bench/service.py,
  profiled-push  `MAPPROF=push=http://127.0.0.1:P,push_every=10s,service=cache-service`: every
                 profile (CPU at 99 Hz continuously, heap, resize, mutex, block) pushed every
                 10 s to a loopback Pyroscope, crates/mapprof/tests/receivers/receiver.py (the
                 push tests' receiver; it decodes every request, with Pyroscope's push.proto),

alternating, in the regressed and fixed modes, each run 1 s of warm-up and 30 s measured (three
pushes per run). The table gives per mode the median QPS of each, the ratio of the medians and
the median of the per-round ratios (target >= 0.98), the server's RssAnon at the end of the
load, and from the receiver's log the bytes pushed per minute per profile (the gzipped pprof
payloads) and per request. Rewrites the push figures of BENCHMARKS.md (between its
`push:begin` / `push:end` markers).

Environment: BENCH_ROUNDS (default 5 here), BENCH_QUICK, BENCH_NO_BUILD, BENCH_NO_WRITE.
"""

import base64
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from run import BENCH, QUICK, RESULTS, ROOT, log, machine, replace_section

import service

BEGIN, END = "<!-- push:begin -->", "<!-- push:end -->"
MODES = ["regressed", "fixed"]
BUILDS = ["profiled", "profiled-push"]
ROUNDS = 2 if QUICK else int(os.environ.get("BENCH_ROUNDS", "5"))
WARMUP_S, DURATION_S = 1, (5 if QUICK else 30)
EVERY_S = 10
TARGET = 0.98
PYTHON = os.path.join(ROOT, "target", "receivers-venv", "bin", "python")
RECEIVER = os.path.join(ROOT, "crates", "mapprof", "tests", "receivers", "receiver.py")


class Receiver:
    def __init__(self):
        if not os.path.exists(PYTHON):
            raise SystemExit(f"{PYTHON} is missing: run `make receivers`")
        self.dir = tempfile.mkdtemp(prefix="bench-push-")
        self.log = os.path.join(self.dir, "requests.jsonl")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([PYTHON, RECEIVER, self.log, port_file])
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("the receiver did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())

    def requests(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def one_run(build, mode, receiver):
    """One run; returns its load report, with the pushes it made when pushing."""
    report = os.path.join(RESULTS, f"push-{mode}-{build}.json")
    extra = None
    seen = len(receiver.requests())
    if build == "profiled-push":
        extra = {"MAPPROF": f"push=http://127.0.0.1:{receiver.port},push_every={EVERY_S}s,"
                            "service=cache-service"}
    rep, out = service.serve_and_load("profiled", mode, DURATION_S, WARMUP_S, report, extra)
    service.check_load(f"{mode}/{build}", rep)
    if build == "profiled-push":
        pushes = receiver.requests()[seen:]
        if not pushes or any(p["mode"] != "ok" for p in pushes):
            raise SystemExit(f"{mode}/{build}: no accepted push:\n{out}")
        sizes = collections.Counter()
        for p in pushes:
            for s in p["series"]:
                for payload in s["profiles"]:
                    sizes[s["labels"]["__name__"]] += len(base64.b64decode(payload))
        rep["pushes"] = len(pushes)
        rep["request_bytes"] = sum(p["bytes"] for p in pushes)
        rep["payload_bytes"] = dict(sizes)
    return rep


def main():
    t0 = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    mach = machine()
    if os.environ.get("BENCH_NO_BUILD") != "1" and not getattr(service, "BUILT", False):
        service.build()
    receiver = Receiver()
    res = {(m, b): [] for m in MODES for b in BUILDS}
    try:
        for r in range(ROUNDS):
            for m in MODES:
                order = BUILDS if r % 2 == 0 else BUILDS[::-1]
                for b in order:
                    res[(m, b)].append(one_run(b, m, receiver))
            log(f"push round {r + 1}/{ROUNDS}: " + "  ".join(
                f"{m} {res[(m, 'profiled')][-1]['qps']:.0f}/{res[(m, 'profiled-push')][-1]['qps']:.0f}"
                for m in MODES) + "  (QPS profiled/profiled-push)")
    finally:
        receiver.stop()
    figures = report(res, mach, time.time() - t0)
    print(figures)
    if not QUICK and os.environ.get("BENCH_NO_WRITE") != "1":
        replace_section(BEGIN, END, figures, "bench/push.py", "push figures")


def report(res, mach, elapsed):
    med = statistics.median
    lines = [f"Measured {time.strftime('%Y-%m-%d')} by `bench/push.py` on {mach['cpu']} "
             f"({mach['nproc']} CPUs), load {mach['load']}; {ROUNDS} rounds × {len(MODES)} modes × "
             f"{len(BUILDS)} builds, {WARMUP_S} s + {DURATION_S} s each, pushing every {EVERY_S} s; "
             f"{elapsed / 60:.0f} min.", "",
             "| mode | profiled QPS | profiled-push QPS | ratio of medians | paired | target ≥ 0.98 "
             "| RssAnon profiled | RssAnon pushing |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for m in MODES:
        a = [x["qps"] for x in res[(m, "profiled")]]
        b = [x["qps"] for x in res[(m, "profiled-push")]]
        ratio, paired = med(b) / med(a), med(y / x for x, y in zip(a, b))
        rss = lambda runs: med(x["rss_anon_kib"] or 0 for x in runs) / 1024
        verdict = "met" if min(ratio, paired) >= TARGET else (
            "met on one reading" if max(ratio, paired) >= TARGET else "missed")
        lines.append(f"| {m} | {med(a):.0f} | {med(b):.0f} | {ratio:.3f} | {paired:.3f} | {verdict} "
                     f"| {rss(res[(m, 'profiled')]):.1f} MiB | {rss(res[(m, 'profiled-push')]):.1f} MiB |")
    lines += ["", "Bytes pushed per minute (gzipped pprof payloads, median over the runs), and per "
              "request (the whole `PushRequest`):", "",
              "| mode | process_cpu | memory | resize | mutex | block | per request |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for m in MODES:
        runs = res[(m, "profiled-push")]
        per_min = lambda name: med(x["payload_bytes"].get(name, 0) / (x["wall_s"] / 60) for x in runs)
        per_req = med(x["request_bytes"] / x["pushes"] for x in runs)
        kib = lambda v: f"{v / 1024:.1f} KiB"
        lines.append(f"| {m} | " + " | ".join(kib(per_min(n)) for n in
                                             ["process_cpu", "memory", "resize", "mutex", "block"])
                     + f" | {kib(per_req)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
