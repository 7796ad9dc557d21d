#!/usr/bin/env python3
"""Continuous-service benchmark for `tandem run` (issue 3). Not a test: it measures.

latency  A small file is edited every 200 ms on alternating sides (left edits a.txt, right
         edits b.txt), 200 times; the delay until the new content is readable on the other
         side is measured by a poller (0.5 ms period). Reported: p50/p95/p99/max.
         Scenario `alone`: default settings. Scenario `copy`: the same while a 4 GiB file
         is copied left->right over a link limited to 100 MB/s ([bandwidth] left_to_right),
         so the large copy is in flight for the whole run (checked and reported).
idle     A 90,000-file pair (../shared/bench/gen_tree.py preset W2, synced once with
         `tandem sync`) watched by `tandem run` for 60 s after its startup reconciliation:
         CPU (utime+stime from /proc) and RSS (VmRSS at the end, VmHWM peak).

usage: python3 bench/service.py [latency] [idle]   (TANDEM=path/to/tandem, SCRATCH=/tmp/tandem-svc-bench)
Writes bench/results-service-YYYYMMDD.csv and prints markdown tables.
"""
import csv
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TANDEM = os.environ.get("TANDEM", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "tandem"))
SCRATCH = os.environ.get("SCRATCH", "/tmp/tandem-svc-bench")
GEN = os.path.join(REPO, "..", "shared", "bench", "gen_tree.py")


class Service:
    def __init__(self, d, left, right, extra=""):
        self.state = os.path.join(d, "state.db")
        cfg = os.path.join(d, "tandem.toml")
        with open(cfg, "w") as f:
            f.write(f'[[pair]]\nname = "bench"\nleft = {json.dumps(left)}\nright = {json.dumps(right)}\n{extra}\n')
        disc = self.state + ".service.json"
        if os.path.exists(disc):
            os.remove(disc)
        self.log = open(os.path.join(d, "service.log"), "w")
        self.p = subprocess.Popen([TANDEM, "--state", self.state, "run", "--config", cfg, "--listen", "127.0.0.1:0",
                                   "--log-dir", os.path.join(d, "logs")], stdout=self.log, stderr=self.log,
                                  env=dict(os.environ, TANDEM_LOG="warn"))
        deadline = time.time() + 60
        while not os.path.exists(disc):
            if time.time() > deadline or self.p.poll() is not None:
                raise SystemExit("the service did not start; see " + self.log.name)
            time.sleep(0.05)
        time.sleep(0.1)
        self.url = json.load(open(disc))["url"]
        self.token = open(self.state + ".api-token").read().strip()

    def status(self):
        req = urllib.request.Request(self.url + "/api/status", headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)["pairs"][0]

    def wait_idle(self, timeout=3600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status()
            if s["state"] in ("idle", "polling") and s["backlog"]["items"] == 0 and s["backlog"]["waiting_paths"] == 0 \
                    and s["last_run"] is not None and all(w["mode"] != "starting" for w in s["watch"]):
                return s
            time.sleep(0.2)
        raise SystemExit("the service did not become idle")

    def proc(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        mem = {}
        for line in open(f"/proc/{self.p.pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                mem[k] = int(v.split()[0]) / 1024
        return ticks / os.sysconf("SC_CLK_TCK"), mem

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=120)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def latency(scenario, n=200, period=0.2):
    d = os.path.join(SCRATCH, "latency-" + scenario)
    shutil.rmtree(d, ignore_errors=True)
    left, right = os.path.join(d, "L"), os.path.join(d, "R")
    os.makedirs(left)
    os.makedirs(right)
    for side, name in ((left, "a.txt"), (right, "b.txt")):
        with open(os.path.join(side, name), "w") as f:
            f.write("start\n")
    extra = ""
    if scenario == "copy":
        with open(os.path.join(left, "big.bin"), "wb") as f:
            f.truncate(4 << 30)
        extra = '[bandwidth]\nleft_to_right = "100 MB"\n'
    svc = Service(d, left, right, extra)
    try:
        deadline = time.time() + 60
        while True:
            s = svc.status()
            if scenario == "copy":
                if any(t["lane"] == "large" and t["done"] > 0 for t in s["transfers"]):
                    break
            elif os.path.exists(os.path.join(right, "a.txt")) and os.path.exists(os.path.join(left, "b.txt")) \
                    and all(w["mode"] == "events" for w in s["watch"]):
                break
            if time.time() > deadline:
                raise SystemExit("not ready: " + json.dumps(s))
            time.sleep(0.05)
        delays = []
        superseded = []
        pending = []  # (target path, content, t0)
        lock = threading.Lock()
        done = threading.Event()

        def poll():
            while not done.is_set() or pending:
                with lock:
                    items = list(pending)
                for it in items:
                    try:
                        with open(it[0], "rb") as f:
                            ok = f.read() == it[1]
                    except OSError:
                        ok = False
                    if ok:
                        with lock:
                            pending.remove(it)
                        delays.append(time.perf_counter() - it[2])
                time.sleep(0.0005)

        th = threading.Thread(target=poll)
        th.start()
        start = time.perf_counter()
        for i in range(n):
            src, dst, name = (left, right, "a.txt") if i % 2 == 0 else (right, left, "b.txt")
            content = f"edit {i} at {time.time()}\n".encode()
            with lock:
                # A newer edit of the same file supersedes a pending one.
                for it in [x for x in pending if x[0] == os.path.join(dst, name)]:
                    pending.remove(it)
                    delays.append(float("nan"))
                    superseded.append((i, round(time.perf_counter() - start, 2)))
                pending.append((os.path.join(dst, name), content, time.perf_counter()))
            with open(os.path.join(src, name), "wb") as f:
                f.write(content)
            nxt = start + (i + 1) * period
            time.sleep(max(0, nxt - time.perf_counter()))
        wait_end = time.time() + 30
        while pending and time.time() < wait_end:
            time.sleep(0.01)
        done.set()
        th.join()
        in_flight = None
        if scenario == "copy":
            in_flight = any(t["lane"] == "large" for t in svc.status()["transfers"])
        lost = sum(1 for x in delays if x != x) + len(pending)
        ms = [x * 1000 for x in delays if x == x]
        return {
            "scenario": scenario, "edits": n, "arrived": len(ms), "superseded_or_lost": lost,
            "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(max(ms), 1), "mean_ms": round(statistics.mean(ms), 1),
            "large_copy_still_in_flight_at_end": in_flight,
            "superseded_at": superseded,
        }
    finally:
        svc.stop()
        shutil.rmtree(d, ignore_errors=True)


def idle(seconds=60):
    d = os.path.join(SCRATCH, "idle")
    shutil.rmtree(d, ignore_errors=True)
    left, right = os.path.join(d, "L"), os.path.join(d, "R")
    os.makedirs(right)
    subprocess.run([sys.executable, GEN, "gen", left, "--preset", "W2", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    files = sum(len(fs) for _, _, fs in os.walk(left))
    dirs = sum(len(ds) for _, ds, _ in os.walk(left))
    t = time.perf_counter()
    subprocess.run([TANDEM, "--state", os.path.join(d, "state.db"), "sync", left, right], check=True, stdout=subprocess.DEVNULL)
    initial = time.perf_counter() - t
    t = time.perf_counter()
    svc = Service(d, left, right)
    try:
        svc.wait_idle()
        startup = time.perf_counter() - t
        cpu0, mem0 = svc.proc()
        time.sleep(seconds)
        cpu1, mem1 = svc.proc()
        return {
            "files": files, "folders": dirs, "initial_sync_s": round(initial, 1), "startup_to_idle_s": round(startup, 2),
            "cpu_s_startup": round(cpu0, 2), "idle_seconds": seconds, "idle_cpu_s": round(cpu1 - cpu0, 3),
            "idle_cpu_pct": round(100 * (cpu1 - cpu0) / seconds, 3), "rss_mib_after_idle": round(mem1["VmRSS"], 1),
            "peak_rss_mib": round(mem1["VmHWM"], 1), "rss_mib_idle_start": round(mem0["VmRSS"], 1),
        }
    finally:
        svc.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    what = sys.argv[1:] or ["latency", "idle"]
    if not os.path.exists(TANDEM):
        subprocess.run(["cargo", "build", "--release", "--bin", "tandem"], cwd=REPO, check=True)
    rows = []
    if "latency" in what:
        for sc in ("alone", "copy"):
            r = latency(sc)
            print(json.dumps(r), flush=True)
            rows += [("latency", sc, k, v) for k, v in r.items() if k != "scenario"]
    if "idle" in what:
        r = idle()
        print(json.dumps(r), flush=True)
        rows += [("idle", "W2", k, v) for k, v in r.items()]
    out = os.path.join(HERE, f"results-service-{datetime.date.today():%Y%m%d}.csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "scenario", "metric", "value"])
        w.writerows(rows)
    print("wrote", out)


if __name__ == "__main__":
    main()
