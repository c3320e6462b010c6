#!/usr/bin/env python3
"""Steady HTTP load that records every request's outcome, for scripts/bench/downtime.sh.

    loadgen.py run URL RATE SECONDS OUT.csv [--threads N] [--timeout S]
        GET URL at RATE requests/s in total (paced per thread, a new connection per
        request, S s timeout, default 0.25) for SECONDS; writes one CSV row per request:
        start,end,ok,detail  (times: time.time(), seconds; detail: status and body, or
        the error).
    loadgen.py report OUT.csv [--mark NAME=T ...]
        failed requests, the longest gap without a successful answer (ms, between the
        ends of two successive successes, counting the run's start and end), where it
        lies relative to the marks, the achieved rate and the bodies seen.
        Prints `KEY=VALUE` lines.
"""
import csv
import http.client
import sys
import threading
import time
from urllib.parse import urlsplit


def run(url, rate, seconds, out, threads, timeout):
    u = urlsplit(url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    rows = []
    lock = threading.Lock()
    t0 = time.time()
    stop = t0 + seconds
    interval = threads / rate

    def worker(i):
        nxt = t0 + i * interval / threads
        local = []
        while True:
            now = time.time()
            if nxt > now:
                time.sleep(nxt - now)
            if nxt >= stop:
                break
            start = time.time()
            try:
                c = http.client.HTTPConnection(host, port, timeout=timeout)
                c.request("GET", path)
                r = c.getresponse()
                body = r.read().decode(errors="replace").strip()
                c.close()
                ok = r.status == 200
                detail = f"{r.status} {body}"
            except Exception as e:  # noqa: BLE001 - every failure is an outcome
                ok = False
                detail = type(e).__name__ + ": " + str(e).replace(",", ";")[:80]
            local.append((start, time.time(), int(ok), detail))
            nxt += interval
            # fall behind? do not burst to catch up: keep the pace from now
            if nxt < time.time() - interval:
                nxt = time.time()
        with lock:
            rows.extend(local)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rows.sort()
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "ok", "detail"])
        w.writerow([t0, stop, -1, "window"])
        w.writerows(rows)


def report(path, marks):
    with open(path) as f:
        r = csv.reader(f)
        next(r)
        win = next(r)
        t0, t1 = float(win[0]), float(win[1])
        rows = [(float(a), float(b), int(c), d) for a, b, c, d in r]
    ok_ends = sorted(b for a, b, c, d in rows if c == 1)
    failed = [x for x in rows if x[2] != 1]
    points = [t0] + ok_ends + [max(t1, ok_ends[-1] if ok_ends else t1)]
    gap, gs, ge = 0.0, t0, t0
    for a, b in zip(points, points[1:]):
        if b - a > gap:
            gap, gs, ge = b - a, a, b
    bodies = {}
    for x in rows:
        if x[2] == 1:
            bodies[x[3]] = bodies.get(x[3], 0) + 1
    errors = {}
    for x in failed:
        k = x[3].split(":")[0]
        errors[k] = errors.get(k, 0) + 1
    print(f"requests={len(rows)}")
    print(f"rate={len(rows) / (t1 - t0):.1f}")
    print(f"failed={len(failed)}")
    print(f"longest_gap_ms={gap * 1000:.0f}")
    for name, t in marks:
        print(f"gap_start_vs_{name}_ms={(gs - t) * 1000:.0f}")
        print(f"gap_end_vs_{name}_ms={(ge - t) * 1000:.0f}")
    print("bodies=" + ",".join(f"{k.replace(' ', ':')}={v}" for k, v in sorted(bodies.items())))
    print("errors=" + (",".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"))
    if failed:
        print(f"first_failure_vs_{marks[0][0] if marks else 't0'}_ms="
              f"{(failed[0][0] - (marks[0][1] if marks else t0)) * 1000:.0f}")


def main(argv):
    if len(argv) >= 6 and argv[1] == "run":
        threads = 16
        if "--threads" in argv:
            threads = int(argv[argv.index("--threads") + 1])
        timeout = 0.25
        if "--timeout" in argv:
            timeout = float(argv[argv.index("--timeout") + 1])
        run(argv[2], float(argv[3]), float(argv[4]), argv[5], threads, timeout)
    elif len(argv) >= 3 and argv[1] == "report":
        marks = []
        if "--mark" in argv:
            for m in argv[argv.index("--mark") + 1:]:
                n, t = m.split("=", 1)
                marks.append((n, float(t)))
        report(argv[2], marks)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
