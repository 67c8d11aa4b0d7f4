#!/usr/bin/python3
"""The seed article's client variants, each timing N requests to one URL.

    clients.py --client {naive,session,futures2,futures10,aiohttp} --url URL [--n 10]
               [--warmup]

Prints one JSON line: {"client", "url", "n", "seconds", "via_proxy"}. The code under
test is the seed's, unchanged: whether it goes through pooled is decided only by the
HTTP_PROXY environment variable (requests reads it by default; aiohttp needs
trust_env=True, its documented switch for honouring the proxy variables).
`--warmup` sends one untimed plain requests.get first (warms pooled's pool).
Every response must be 200, else exit 1. Imports happen before the clock starts.
"""
import argparse
import asyncio
import json
import os
import sys
import time

import requests

aiohttp = sessions = None  # imported in main(), before the clock starts, when needed


def naive(url, n):
    for _ in range(n):
        check(requests.get(url, timeout=30).status_code)


def session(url, n):
    s = requests.Session()
    for _ in range(n):
        check(s.get(url, timeout=30).status_code)


def futures(workers):
    def run(url, n):
        s = sessions.FuturesSession(max_workers=workers)
        fs = [s.get(url, timeout=30) for _ in range(n)]
        for f in fs:
            check(f.result().status_code)
    return run


def aio(url, n):
    trust = bool(os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy"))

    async def get(u):
        async with aiohttp.ClientSession(trust_env=trust) as s:
            async with s.get(u, timeout=aiohttp.ClientTimeout(total=30)) as r:
                await r.read()
                return r.status

    async def all_():
        return await asyncio.gather(*[get(url) for _ in range(n)])

    for st in asyncio.run(all_()):
        check(st)


def check(status):
    if status != 200:
        print(f"clients.py: unexpected status {status}", file=sys.stderr)
        sys.exit(1)


CLIENTS = {"naive": naive, "session": session, "futures2": futures(2),
           "futures10": futures(10), "aiohttp": aio}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True, choices=sorted(CLIENTS))
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--warmup", action="store_true")
    a = ap.parse_args()
    global aiohttp, sessions
    if a.client == "aiohttp":
        import aiohttp
    elif a.client.startswith("futures"):
        from requests_futures import sessions
    if a.warmup:
        check(requests.get(a.url, timeout=30).status_code)
    t0 = time.perf_counter()
    CLIENTS[a.client](a.url, a.n)
    dt = time.perf_counter() - t0
    print(json.dumps({"client": a.client, "url": a.url, "n": a.n, "seconds": round(dt, 4),
                      "via_proxy": os.environ.get("HTTP_PROXY", "")}))


if __name__ == "__main__":
    main()
