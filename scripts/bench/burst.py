#!/usr/bin/env python3
"""The burst driver and checker for scripts/bench/burst.sh (stdlib only).

    burst.py run --url URL --token T --targets N --pushes K --state DB --pid PID
                 [--concurrency C] [--seed S] [--drain-timeout S] [--json OUT]

Sends N*K distinct `generic` hooks (K pushes per target, shuffled; the tag is `s` and the
push's place in the sending order) to URL/hooks/ci from C threads (one keep-alive
connection each), and records every answer:
status, and for a 202 the deployment ids it queued. Meanwhile a sampler reads
/proc/PID/status every 20 ms (VmRSS, Threads). Once every hook is answered it polls the
state file (read-only SQLite, every 50 ms) until no deployment is queued or running, then
checks the state file against the answers:

  - events lost: 202 answers whose deployment row (or that row's event) is missing;
  - deploys per target: deployments that ran (state dry_run/succeeded/..., not superseded);
  - final state: each target's newest deployment (highest id, i.e. its newest push as
    dockhand received it) is the one that ran last, and ended dry_run.

Prints `KEY=VALUE` lines (and writes them as JSON with --json). Exit status 0 even when a
check fails: burst.sh reports and judges.
"""
import argparse
import http.client
import json
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from urllib.parse import urlsplit


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Peak VmRSS and thread count of PID, sampled every 20 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_rss, self.peak_threads = pid, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            s = proc_status(self.pid)
            self.peak_rss = max(self.peak_rss, s.get("VmRSS", 0))
            self.peak_threads = max(self.peak_threads, s.get("Threads", 0))
            self.stop.wait(0.02)


def send_all(url, token, pushes, concurrency):
    """POSTs every (target, tag); returns a list of (target, tag, status, ids, error)."""
    u = urlsplit(url)
    results = [None] * len(pushes)
    next_i = [0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker():
        conn = None
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(pushes):
                break
            target, image, tag = pushes[i]
            body = json.dumps({"image": image, "tag": tag})
            status, ids, err = 0, [], ""
            for attempt in (1, 2):  # one reconnect if the kept-alive connection was closed
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                    conn.request("POST", "/hooks/ci", body, headers)
                    r = conn.getresponse()
                    data = r.read()
                    status = r.status
                    if status == 202:
                        ids = [q["id"] for q in json.loads(data)["queued"]]
                    elif status != 200:
                        err = data[:200].decode("utf-8", "replace")
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    err = f"{type(e).__name__}: {e}"
                    # Only a request that was never answered may be sent again: a
                    # connection closed before the request was read. Sending it twice
                    # is harmless anyway (dockhand takes the second for a replay).
                    if attempt == 2:
                        status = 0
            results[i] = (target, tag, status, ids, err)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def connect(state):
    con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    con.execute("PRAGMA busy_timeout = 30000")
    return con


def pending(state):
    con = connect(state)
    try:
        return con.execute(
            "SELECT COUNT(*) FROM deployments WHERE state IN ('queued', 'running')"
        ).fetchone()[0]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--targets", type=int, required=True)
    ap.add_argument("--pushes", type=int, required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--drain-timeout", type=float, default=600)
    ap.add_argument("--image-prefix", default="127.0.0.1:5999/burst-")
    ap.add_argument("--json")
    a = ap.parse_args()

    names = [f"t{n:04d}" for n in range(1, a.targets + 1)]
    pushes = [(t, a.image_prefix + t, k) for t in names for k in range(1, a.pushes + 1)]
    random.Random(a.seed).shuffle(pushes)
    pushes = [(t, img, f"s{seq:05d}") for seq, (t, img, _) in enumerate(pushes)]

    before = pending(a.state)
    sampler = Sampler(a.pid)
    sampler.start()
    t0 = time.monotonic()
    results = send_all(a.url, a.token, pushes, a.concurrency)
    t_accepted = time.monotonic()
    # Drain: poll the state file until nothing is queued or running.
    drained = None
    while time.monotonic() - t_accepted < a.drain_timeout:
        if pending(a.state) == 0:
            drained = time.monotonic()
            break
        time.sleep(0.05)
    sampler.stop.set()
    sampler.join()
    end = proc_status(a.pid)

    statuses = Counter(r[2] for r in results)
    errors = Counter(r[4].split(":")[0] for r in results if r[4])
    accepted = [r for r in results if r[2] == 202]
    # The newest push of each target, in dockhand's order: the highest deployment id.
    newest = {}
    for target, tag, status, ids, _ in accepted:
        for i in ids:
            if target not in newest or i > newest[target][0]:
                newest[target] = (i, tag)

    con = connect(a.state)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT d.id, d.target, d.tag, d.state, d.started_at, e.id FROM deployments d "
            "LEFT JOIN events e ON e.id = d.event_id"
        )
    }
    events_rows = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    log_rows = con.execute("SELECT COUNT(*) FROM deployment_logs").fetchone()[0]
    con.close()

    lost = 0
    for _, _, _, ids, _ in accepted:
        if not ids or any(i not in rows or rows[i][4] is None for i in ids):
            lost += 1
    states = Counter(r[2] for r in rows.values())
    ran = defaultdict(list)  # target -> ids of deployments that ran (not superseded)
    by_target = defaultdict(list)
    for i, (target, tag, state, started, _) in rows.items():
        by_target[target].append(i)
        if started is not None and state not in ("superseded", "queued"):
            ran[target].append(i)
    per_target = [len(ran[t]) for t in names]
    hist = Counter(per_target)
    wrong_final = []
    for t in names:
        if t not in newest:
            wrong_final.append(f"{t}: no push accepted")
            continue
        nid, ntag = newest[t]
        last_ran = max(ran[t]) if ran[t] else None
        top = max(by_target[t])
        if last_ran != nid or top != nid or rows[nid][2] != "dry_run":
            wrong_final.append(
                f"{t}: newest push {ntag} (deployment {nid}, {rows.get(nid, ('', '', '?'))[2]}); "
                f"last ran {last_ran}; newest row {top}"
            )

    out = {
        "hooks_sent": len(results),
        "statuses": ",".join(f"{k}={v}" for k, v in sorted(statuses.items())),
        "accepted_202": len(accepted),
        "socket_errors": sum(1 for r in results if r[2] == 0),
        "errors": ",".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none",
        "events_rows": events_rows,
        "events_lost": lost,
        "deployment_rows": len(rows),
        "log_rows": log_rows,
        "pending_before": before,
        "states": ",".join(f"{k}={v}" for k, v in sorted(states.items())),
        "superseded": states.get("superseded", 0),
        "deploys_ran": sum(per_target),
        "deploys_per_target_max": max(per_target) if per_target else 0,
        "deploys_per_target_mean": round(sum(per_target) / len(per_target), 3) if per_target else 0,
        "deploys_per_target_hist": ",".join(f"{k}:{v}" for k, v in sorted(hist.items())),
        "final_state_wrong": len(wrong_final),
        "final_state_examples": " | ".join(wrong_final[:3]) or "none",
        "accept_s": round(t_accepted - t0, 3),
        "accept_rps": round(len(results) / (t_accepted - t0), 1),
        "drain_after_accept_s": round(drained - t_accepted, 3) if drained else "timeout",
        "drain_total_s": round(drained - t0, 3) if drained else "timeout",
        "peak_rss_sampled_kb": sampler.peak_rss,
        "peak_threads": sampler.peak_threads,
        "vmhwm_kb": end.get("VmHWM", 0),
        "vmrss_end_kb": end.get("VmRSS", 0),
        "threads_end": end.get("Threads", 0),
    }
    for k, v in out.items():
        print(f"{k}={v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
