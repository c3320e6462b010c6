#!/usr/bin/env python3
"""Waits until a deploy has converged, for scripts/bench/overhead.sh; prints when.

    converged.py --body BODY --url URL
        until GET URL answers 200 with BODY (a container on a published port).
    converged.py --body BODY --swarm SERVICE --network NET --replicas N
        until exactly N tasks of SERVICE should and do run (desired state and state
        "running", as loadgen.py's task-aware client sees them) and each answers BODY on
        :PORT at its IP on NET.
    [--port 8080] [--interval 0.02] [--timeout 120]

Polls every --interval seconds from the moment it starts (start it before the deploy is
triggered: BODY is new, so nothing converges earlier). Prints the time (time.time(),
seconds) at the end of the first poll that saw the deploy converged; exits 1 on timeout.
Both ways of deploying are measured by this same poller, so its own cost (a few ms a
round) is the same for both.
"""
import argparse
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402  (the Engine API task lookup and the GET)


async def converged(a, sock):
    if a.url:
        import urllib.parse
        u = urllib.parse.urlsplit(a.url)
        ok, detail = await loadgen.get(u.hostname, u.port or 80, u.path or "/", 1.0)
        return ok and detail == f"200 {a.body}"
    tasks = await loadgen.running_task_ips(sock, a.swarm, a.network)
    if len(tasks) != a.replicas:
        return False
    answers = await asyncio.gather(*(loadgen.get(ip, a.port, "/", 1.0) for ip, _ in tasks))
    return all(ok and detail == f"200 {a.body}" for ok, detail in answers)


async def main(a):
    sock = loadgen.docker_socket()
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        try:
            if await converged(a, sock):
                print(f"{time.time():.6f}")
                return 0
        except Exception:  # noqa: BLE001 - the engine may be busy: poll again
            pass
        await asyncio.sleep(a.interval)
    print(f"converged.py: not converged within {a.timeout} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--body", required=True)
    p.add_argument("--url")
    p.add_argument("--swarm")
    p.add_argument("--network")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    if bool(args.url) == bool(args.swarm) or (args.swarm and not args.network):
        p.error("give --url URL, or --swarm SERVICE --network NET")
    sys.exit(asyncio.run(main(args)))
