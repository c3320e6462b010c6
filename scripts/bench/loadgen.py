#!/usr/bin/env python3
"""Open-loop HTTP load that records every request's outcome, for scripts/bench/downtime.sh.

    loadgen.py run --rate R --seconds S --out OUT.csv
                   (--url URL | --swarm SERVICE --network NET | --dns NAME --network NET)
                   [--port 8080] [--path /] [--timeout 1.0] [--refresh 0.1] [--procs N]
        Sends R GET/s in total for S seconds, each on a new connection, paced on a fixed
        schedule (open loop: a slow or hung request never delays the next one; asyncio, so
        one process keeps up with several hundred req/s; --procs N splits the rate over N
        processes when one is not enough). Writes one CSV row per request.

        --url URL: every request goes to URL (a container on a published port).
        --swarm SERVICE --network NET: a task-aware client, as a reverse proxy in front of a
        Swarm service would be: every --refresh seconds it asks the Engine API
        (/var/run/docker.sock, or DOCKER_HOST=unix://...) for the service's tasks whose
        desired state AND state are "running" (so a task that is still starting, i.e. not
        healthy yet, or is being shut down, is not used), maps their containers to their
        IPs on NET, and sends the requests round-robin over those IPs on --port. Every
        request that fails at the transport level (refused, reset, closed before an
        answer, timed out) is retried ONCE on the next task of the pool, the way nginx's
        `proxy_next_upstream error timeout` would; the CSV keeps the first attempt and the
        retry apart, so one run gives both "no retry" and "one retry" figures. Pool changes
        are written to OUT.csv.pool (time asked, time answered, IP=container...).

        --dns NAME --network NET: the same client, but its pool is what Docker's embedded
        DNS answers for NAME on NET (a reverse proxy in that network that re-resolves the
        name every --refresh seconds, e.g. nginx with `resolver 127.0.0.11 valid=...`):
        the running containers named NAME or with the alias NAME there, healthy or not.

        CSV columns: start,end,ok,detail,target,retry_end,retry_ok,retry_detail,retry_target
        (times: time.time() seconds; ok 1/0; retry_* empty when there was no retry). The
        second row is the window: start,end,-1,"window",late_ms (the most the pacing fell
        behind schedule).

    loadgen.py report OUT.csv [--mark NAME=T]... [--events FILE]
        Prints KEY=VALUE lines: requests, rate sent, how late the pacing fell, failed, the
        longest gap without a successful answer (ms, between the ends of two successive
        successes, or from the last one to the run's end), where it lies relative to the
        first mark, latency of the successes, the bodies seen and the errors; for a --swarm run
        the same after one retry (retry_failed, retry_longest_gap_ms...), how the task pool
        changed, and per task that left it or failed: when it left the pool, when it was
        sent SIGTERM and when it died (from --events: `docker events` lines
        "TIMENANO ACTION CONTAINER_ID"), and when the requests sent to it failed. All times
        in ms relative to the first mark.
"""
import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import socket
import sys
import time
import urllib.parse

# ---------------------------------------------------------------------------- requests


async def get(host, port, path, timeout):
    """One GET on a new connection. Returns (ok, detail)."""
    writer = None
    try:
        async def once():
            nonlocal writer
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = await reader.read()
            return data

        data = await asyncio.wait_for(once(), timeout)
        if not data:
            return False, "RemoteDisconnected: closed without an answer"
        head, _, body = data.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return False, "BadStatusLine: " + status_line[:40]
        status = int(parts[1])
        body = body.decode(errors="replace").strip().replace(",", ";")[:40]
        return status == 200, f"{status} {body}"
    except asyncio.TimeoutError:
        return False, f"TimeoutError: no answer within {timeout}s"
    except Exception as e:  # noqa: BLE001 - every failure is an outcome
        return False, type(e).__name__ + ": " + str(e).replace(",", ";")[:60]
    finally:
        if writer is not None:
            writer.close()


# ---------------------------------------------------------------------------- discovery


def docker_socket():
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


async def engine_get(sock, path, query):
    """GET /v1.41/PATH?QUERY on the Engine API over its unix socket; returns the JSON."""
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        q = urllib.parse.urlencode(query)
        writer.write(f"GET /v1.41/{path}?{q} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"engine: {head[:80]!r}")
    return json.loads(body)


# container id -> its IP on the network: a container's address does not change, so only
# containers not seen before are inspected, and each refresh is one cheap /tasks call (the
# swarm store) instead of listing every container on the host.
IP_OF = {}


async def running_task_ips(sock, service, network):
    """(IP on NETWORK, container id) of SERVICE's tasks that should run and do run
    (healthy, when they have a health check: Swarm reports 'starting' until then)."""
    tasks = await engine_get(sock, "tasks", {"filters": json.dumps(
        {"service": [service], "desired-state": ["running"]})})
    ids = {t.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
           for t in tasks
           if t.get("DesiredState") == "running" and t.get("Status", {}).get("State") == "running"}
    ids.discard(None)
    out = []
    for cid in sorted(ids):
        if cid not in IP_OF:
            c = await engine_get(sock, f"containers/{cid}/json", {})
            ip = ((c.get("NetworkSettings") or {}).get("Networks") or {}).get(network, {}).get("IPAddress")
            if not ip:
                continue
            IP_OF[cid] = ip
        out.append((IP_OF[cid], cid[:12]))
    return sorted(out)


# containers whose name answers a DNS name on a network: (ip, matches), by container id.
DNS_OF = {}


async def dns_ips(sock, name, network):
    """(IP on NETWORK, container id) of the running containers that Docker's embedded DNS
    answers for NAME on NETWORK: those named NAME or with NAME among their aliases there.
    Not health-filtered: the DNS answers a container as soon as it is connected, and until
    it disconnects (stops), under the name and aliases it joined with (a rename does not
    change them: Engine 20.10, checked with nslookup), so both are read once per container."""
    net = await engine_get(sock, f"networks/{network}", {})
    out = []
    for cid, c in sorted((net.get("Containers") or {}).items()):
        if cid not in DNS_OF:
            info = await engine_get(sock, f"containers/{cid}/json", {})
            ep = ((info.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
            names = {info.get("Name", "").lstrip("/")} | set(ep.get("Aliases") or [])
            DNS_OF[cid] = (c.get("IPv4Address", "").split("/")[0], name in names)
        ip, matches = DNS_OF[cid]
        if matches and ip:
            out.append((ip, cid[:12]))
    return sorted(out)


async def discover(sock, args):
    if args.swarm:
        return await running_task_ips(sock, args.swarm, args.network)
    return await dns_ips(sock, args.dns, args.network)


# ---------------------------------------------------------------------------- one process


async def run_async(args, rate, offset, rows, pool_log):
    sock = docker_socket()
    pool = []
    if args.swarm or args.dns:
        for _ in range(300):
            try:
                pool = await discover(sock, args)
            except Exception:  # noqa: BLE001 - the engine may be busy: try again
                pool = []
            if pool:
                break
            await asyncio.sleep(0.1)
        if not pool:
            sys.exit(f"loadgen: nothing answers {args.swarm or args.dns} on network {args.network}")
        pool_log.append((time.time(), time.time(), list(pool)))
    else:
        u = urllib.parse.urlsplit(args.url)
        fixed = (u.hostname, u.port or 80)
        path = u.path or "/"
    if args.swarm or args.dns:
        path = args.path

    t0 = args.t0
    stop = t0 + args.seconds
    stopping = False
    slowest_refresh = 0.0

    async def refresher():
        nonlocal pool, slowest_refresh
        while not stopping:
            await asyncio.sleep(args.refresh)
            asked = time.time()
            try:
                new = await discover(sock, args)
            except Exception:  # noqa: BLE001 - keep the last known pool
                continue
            slowest_refresh = max(slowest_refresh, time.time() - asked)
            if new != pool:
                pool = new
                pool_log.append((asked, time.time(), list(new)))

    rr = 0

    async def one():
        nonlocal rr
        start = time.time()
        if args.swarm or args.dns:
            if not pool:
                rows.append((start, start, 0, "NoTask: the pool is empty", "", "", "", "", ""))
                return
            i = rr
            rr += 1
            host = pool[i % len(pool)][0]
            ok, detail = await get(host, args.port, path, args.timeout)
            end = time.time()
            if ok or not args.retry or detail[:1].isdigit():
                rows.append((start, end, int(ok), detail, host, "", "", "", ""))
                return
            # nginx `proxy_next_upstream error timeout`: the next server, once.
            others = [p[0] for p in pool if p[0] != host] or [host]
            host2 = others[i % len(others)]
            ok2, detail2 = await get(host2, args.port, path, args.timeout)
            rows.append((start, end, 0, detail, host, time.time(), int(ok2), detail2, host2))
        else:
            ok, detail = await get(fixed[0], fixed[1], path, args.timeout)
            rows.append((start, time.time(), int(ok), detail, "", "", "", "", ""))

    ref = asyncio.ensure_future(refresher()) if (args.swarm or args.dns) else None
    interval = 1.0 / rate
    pending = set()
    late = 0.0
    n = 0
    while True:
        due = t0 + offset + n * interval
        if due >= stop:
            break
        now = time.time()
        if due > now:
            await asyncio.sleep(due - now)
        else:
            late = max(late, now - due)
        t = asyncio.ensure_future(one())
        pending.add(t)
        t.add_done_callback(pending.discard)
        n += 1
    if pending:
        await asyncio.wait(pending)
    stopping = True
    if ref:
        ref.cancel()
    if args.swarm or args.dns:
        pool_log.append((time.time(), time.time(), ["slowest_refresh_ms", f"{slowest_refresh * 1000:.0f}"]))
    return late


def run_proc(args, rate, offset, out_part):
    rows, pool_log = [], []
    late = asyncio.run(run_async(args, rate, offset, rows, pool_log))
    with open(out_part, "w") as f:
        json.dump({"rows": rows, "pool": pool_log if offset == 0.0 else [], "late": late}, f)


def run(args):
    procs = max(1, args.procs)
    args.t0 = time.time() + 0.3  # all processes start on the same schedule
    parts = [f"{args.out}.part{i}" for i in range(procs)]
    if procs == 1:
        run_proc(args, args.rate, 0.0, parts[0])
    else:
        ps = [multiprocessing.Process(target=run_proc,
                                      args=(args, args.rate / procs, i / args.rate, parts[i]))
              for i in range(procs)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
            if p.exitcode != 0:
                sys.exit(f"loadgen: a worker process failed ({p.exitcode})")
    rows, pools, late = [], [], 0.0
    for p in parts:
        with open(p) as f:
            d = json.load(f)
        rows.extend(tuple(r) for r in d["rows"])
        pools.extend(d["pool"])
        late = max(late, d["late"])
        os.unlink(p)
    rows.sort()
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "ok", "detail", "target", "retry_end", "retry_ok",
                    "retry_detail", "retry_target"])
        w.writerow([args.t0, args.t0 + args.seconds, -1, "window", f"{late * 1000:.1f}",
                    "", "", "", ""])
        w.writerows(rows)
    if args.swarm or args.dns:
        with open(args.out + ".pool", "w") as f:
            for asked, got, tasks in sorted(pools, key=lambda x: x[0]):
                if tasks and tasks[0] == "slowest_refresh_ms":
                    f.write(f"# slowest refresh: {tasks[1]} ms\n")
                    continue
                f.write(f"{asked:.6f} {got:.6f} {' '.join(f'{ip}={cid}' for ip, cid in tasks)}\n")


# ---------------------------------------------------------------------------- report


def gap_of(t0, t1, ok_ends):
    """The longest time without a successful answer: between two successive successes,
    and from the last one to the end of the run (an outage that lasts to the end counts).
    Not from the start of the run to the first success: that is the generator warming up."""
    ok_ends = sorted(ok_ends)
    points = (ok_ends or [t0]) + [max(t1, ok_ends[-1] if ok_ends else t1)]
    gap, gs, ge = 0.0, t0, t0
    for a, b in zip(points, points[1:]):
        if b - a > gap:
            gap, gs, ge = b - a, a, b
    return gap, gs, ge


def kind(detail):
    return detail.split(":")[0] if not detail[:1].isdigit() else "HTTP" + detail[:3]


def section(prefix, t0, t1, outcomes, marks):
    """outcomes: (start, end, ok, detail) -> KEY=VALUE lines, keys prefixed."""
    ok_ends = [e for s, e, ok, d in outcomes if ok]
    failed = [x for x in outcomes if not x[2]]
    gap, gs, ge = gap_of(t0, t1, ok_ends)
    lat = sorted(e - s for s, e, ok, d in outcomes if ok)
    print(f"{prefix}failed={len(failed)}")
    print(f"{prefix}longest_gap_ms={gap * 1000:.0f}")
    if lat:
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(f"{prefix}latency_ms=p50:{pct(0.5):.1f},p99:{pct(0.99):.1f},max:{lat[-1] * 1000:.0f}")
        print(f"{prefix}slow_over_1s={sum(1 for x in lat if x > 1.0)}")
    for name, t in marks:
        print(f"{prefix}gap_start_vs_{name}_ms={(gs - t) * 1000:.0f}")
        print(f"{prefix}gap_end_vs_{name}_ms={(ge - t) * 1000:.0f}")
    errors = {}
    for x in failed:
        errors[kind(x[3])] = errors.get(kind(x[3]), 0) + 1
    print(f"{prefix}errors=" + (",".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"))
    if marks:
        print(f"{prefix}failed_before_{marks[0][0]}={sum(1 for x in failed if x[0] < marks[0][1])}")
    if failed and marks:
        print(f"{prefix}first_failure_vs_{marks[0][0]}_ms={(failed[0][0] - marks[0][1]) * 1000:.0f}")
        print(f"{prefix}last_failure_vs_{marks[0][0]}_ms={(failed[-1][0] - marks[0][1]) * 1000:.0f}")


def report(path, marks, events=None):
    with open(path) as f:
        r = csv.reader(f)
        next(r)
        win = next(r)
        t0, t1, late = float(win[0]), float(win[1]), win[4]
        rows = list(r)
    first = [(float(x[0]), float(x[1]), x[2] == "1", x[3]) for x in rows]
    print(f"requests={len(rows)}")
    print(f"rate={len(rows) / (t1 - t0):.1f}")
    print(f"pacing_late_max_ms={late}")
    bodies = {}
    for x in rows:
        if x[2] == "1":
            bodies[x[3]] = bodies.get(x[3], 0) + 1
        elif x[6] == "1":
            bodies[x[7]] = bodies.get(x[7], 0) + 1
    print("bodies=" + ",".join(f"{k.replace(' ', ':')}={v}" for k, v in sorted(bodies.items())))
    section("", t0, t1, first, marks)
    retried = [x for x in rows if x[5]]
    if retried or os.path.exists(path + ".pool"):
        print(f"retried={len(retried)}")
        after = [(float(x[0]), float(x[5]) if x[5] else float(x[1]),
                  x[2] == "1" or x[6] == "1", x[7] if x[5] else x[3]) for x in rows]
        section("retry_", t0, t1, after, marks)
    pool_path = path + ".pool"
    if os.path.exists(pool_path):
        pool_report(pool_path, rows, marks, t0, events)


def pool_report(pool_path, rows, marks, t0, events):
    """How the task pool changed, and for each task that left it: when it left, when the
    engine sent it SIGTERM and when it died (from `docker events`, if given), and how many
    requests sent to it failed and when."""
    zero = marks[0][1] if marks else t0
    rel = lambda t: f"{(t - zero) * 1000:.0f}"
    pool = []
    with open(pool_path) as f:
        for line in f:
            if line.startswith("# slowest refresh: "):
                print(f"slowest_refresh_ms={line.split()[3]}")
                continue
            t, _, *tasks = line.split()
            pool.append((float(t), dict(x.split("=", 1) for x in tasks)))
    print("pool_changes=" + " ".join(f"{rel(t)}ms:{'+'.join(sorted(p)) or '-'}" for t, p in pool))
    left = {}
    for (_, a), (tb, b) in zip(pool, pool[1:]):
        for ip in set(a) - set(b):
            left.setdefault(ip, (tb, a[ip]))
    ev = {}
    if events:
        with open(events) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    ev.setdefault((parts[2][:12], parts[1]), int(parts[0]) / 1e9)
    fails, retry_fails = {}, {}
    for x in rows:
        if x[2] != "1":
            fails.setdefault(x[4], []).append(float(x[0]))
            if x[6] != "1":
                retry_fails.setdefault(x[4], []).append(float(x[0]))
    for ip in sorted(set(left) | set(fails)):
        t_left, cid = left.get(ip, (None, "?"))
        parts = [f"task_{ip}=container:{cid}"]
        if t_left is not None:
            parts.append(f"left_pool:{rel(t_left)}ms")
        for action in ("kill", "die"):
            if (cid, action) in ev:
                parts.append(f"{'sigterm' if action == 'kill' else 'died'}:{rel(ev[(cid, action)])}ms")
        f = fails.get(ip, [])
        parts.append(f"failed:{len(f)}")
        if f:
            parts.append(f"failures_from:{rel(min(f))}ms_to:{rel(max(f))}ms")
        if (cid, "kill") in ev:
            # sent while it still ran (overload, or its last moments) vs sent once the
            # engine had told it to stop (the client still routed to a stopping task)
            k = ev[(cid, "kill")]
            parts.append(f"failed_sent_before_sigterm:{sum(1 for t in f if t < k)}")
            parts.append(f"failed_sent_after_sigterm:{sum(1 for t in f if t >= k)}")
            parts.append(f"after_retry:{sum(1 for t in retry_fails.get(ip, []) if t >= k)}")
        print(",".join(parts))


def main(argv):
    if len(argv) >= 2 and argv[1] == "report":
        p = argparse.ArgumentParser(prog="loadgen.py report")
        p.add_argument("csv")
        p.add_argument("--mark", action="append", default=[])
        p.add_argument("--events", help="`docker events` lines: TIMENANO ACTION CONTAINER_ID")
        a = p.parse_args(argv[2:])
        marks = []
        for m in a.mark:
            n, t = m.split("=", 1)
            marks.append((n, float(t)))
        report(a.csv, marks, a.events)
        return
    if len(argv) >= 2 and argv[1] == "run":
        p = argparse.ArgumentParser(prog="loadgen.py run")
        p.add_argument("--rate", type=float, required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--url")
        p.add_argument("--swarm")
        p.add_argument("--dns")
        p.add_argument("--network")
        p.add_argument("--port", type=int, default=8080)
        p.add_argument("--path", default="/")
        p.add_argument("--timeout", type=float, default=1.0)
        p.add_argument("--refresh", type=float, default=0.1)
        p.add_argument("--procs", type=int, default=1)
        p.add_argument("--no-retry", dest="retry", action="store_false")
        a = p.parse_args(argv[2:])
        if sum(map(bool, (a.url, a.swarm, a.dns))) != 1 or ((a.swarm or a.dns) and not a.network):
            p.error("give --url URL, --swarm SERVICE --network NET, or --dns NAME --network NET")
        a.retry = a.retry and bool(a.swarm or a.dns)
        run(a)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    main(sys.argv)
