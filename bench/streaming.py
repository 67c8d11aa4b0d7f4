#!/usr/bin/python3
"""bench §3: streaming and memory, pooled against the proxies users pick.

    streaming.py --pooled BIN --work DIR --raw FILE [--rounds 3] [--size-mib 1024]
                 [--slow-seconds 10] [--idle 10000]

1. Idle clients: fresh pooled and nginx, each held --idle connections that send nothing;
   RSS per connection = growth of the server's RSS (whole process tree) / connections
   it accepted (counted in /proc/PID/fd).
2. A --size-mib response (sparse file on the origin nginx) through each proxy to
   `curl -o /dev/null`, rounds in rotated order: MB/s, and the proxy's peak RSS (VmHWM
   summed over its processes; fresh proxies, so the peak is this section's).
3. The same response to a client limited to 20 MB/s for --slow-seconds, one per proxy,
   all at once: the proxy's RSS growth over its RSS before (sampled every 0.2 s) and the
   bytes in files it writes meanwhile (open regular files, unlinked temp files included,
   and its directory).
Appends one JSON line per measurement to --raw.
"""
import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import time

import servers

MIB = 1 << 20
PROXIES = ("pooled", "nginx", "haproxy", "squid", "tinyproxy")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def curl_cmd(server, origin, extra=()):
    url = f"http://127.0.0.1:{origin.port}/stream"
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
           *extra]
    if server is None:
        return cmd + [url]
    if server.kind == "forward":
        return cmd + ["-x", f"http://127.0.0.1:{server.port}", url]
    return cmd + [f"http://127.0.0.1:{server.port}/stream"]


def fast(raw, origin, server, name, size, rnd):
    p = subprocess.run(curl_cmd(server, origin, ["-m", "300"]), capture_output=True, text=True)
    code, got, secs = p.stdout.split()
    if code != "200" or int(got) != size:
        sys.exit(f"streaming.py: {name}: got {code} and {got} of {size} bytes")
    rec = {"section": 3, "test": "stream", "round": rnd, "target": name,
           "bytes": size, "seconds": float(secs), "mb_s": round(size / float(secs) / 1e6, 1),
           "hwm_kib": servers.status_kib(server.pid, "VmHWM") if server else None}
    raw.write(json.dumps(rec) + "\n")
    log(f"§3 r{rnd} stream {name:<10} {rec['mb_s']:>8.1f} MB/s"
        + (f", peak RSS {rec['hwm_kib'] / 1024:.1f} MiB" if server else ""))


def slow(raw, origin, proxies, seconds):
    """One rate-limited client per proxy, all at once (20 MB/s each is light work)."""
    rss0 = {p.name: servers.status_kib(p.pid, "VmRSS") for p in proxies}
    disk0 = {p.name: servers.dir_bytes(p.workdir) for p in proxies}
    curls = {p.name: subprocess.Popen(curl_cmd(p, origin, ["--limit-rate", "20M", "-m",
                                                           str(seconds)]),
                                      stdout=subprocess.PIPE, text=True) for p in proxies}
    rss_max, files_max, disk_max = dict(rss0), dict.fromkeys(rss0, 0), dict(disk0)
    while any(c.poll() is None for c in curls.values()):
        for p in proxies:
            n = p.name
            rss_max[n] = max(rss_max[n], servers.status_kib(p.pid, "VmRSS"))
            files_max[n] = max(files_max[n], servers.open_file_bytes(p.pid))
            disk_max[n] = max(disk_max[n], servers.dir_bytes(p.workdir))
        time.sleep(0.2)
    for p in proxies:
        n = p.name
        out = curls[n].stdout.read().split()
        got = int(out[1]) if len(out) > 1 else 0
        rec = {"section": 3, "test": "slow", "target": n, "seconds": seconds,
               "client_bytes": got, "rss_before_kib": rss0[n],
               "rss_growth_kib": rss_max[n] - rss0[n],
               "file_bytes": max(files_max[n], disk_max[n] - disk0[n])}
        raw.write(json.dumps(rec) + "\n")
        log(f"§3 slow   {n:<10} client got {got / MIB:.0f} MiB in {seconds} s, RSS "
            f"+{rec['rss_growth_kib'] / 1024:.2f} MiB, files {rec['file_bytes'] / MIB:.1f} MiB")


def hold_idle(server, n, port):
    """Open n idle connections in batches the server accepts before the next; measure."""
    rss0 = servers.status_kib(server.pid, "VmRSS")
    fds0 = servers.fd_count(server.pid)
    socks, sel = [], selectors.DefaultSelector()
    t0 = time.monotonic()
    try:
        while len(socks) < n:
            batch = []
            for _ in range(min(250, n - len(socks))):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                sel.register(s, selectors.EVENT_WRITE)
                batch.append(s)
            pending, end = len(batch), time.monotonic() + 10
            while pending and time.monotonic() < end:
                for key, _ in sel.select(timeout=1):
                    sel.unregister(key.fileobj)
                    pending -= 1
            if pending:
                raise RuntimeError(f"{server.name}: {pending} connects did not complete")
            for s in batch:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    raise RuntimeError(f"{server.name}: a connect failed")
            socks += batch
            end = time.monotonic() + 10  # the server has accepted them: they hold memory
            while servers.fd_count(server.pid) < fds0 + len(socks) and time.monotonic() < end:
                time.sleep(0.02)
        time.sleep(0.5)
        accepted = servers.fd_count(server.pid) - fds0
        rss1 = servers.status_kib(server.pid, "VmRSS")
        took = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()
        sel.close()
    return {"section": 3, "test": "idle", "target": server.name, "conns": n,
            "accepted": accepted, "rss_before_kib": rss0, "rss_kib": rss1,
            "bytes_per_conn": round((rss1 - rss0) * 1024 / max(accepted, 1)),
            "seconds_to_open": round(took, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pooled", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--slow-seconds", type=int, default=10)
    ap.add_argument("--idle", type=int, default=10000)
    a = ap.parse_args()
    servers.raise_nofile()
    pooled_bin = os.path.abspath(a.pooled)
    size = a.size_mib * MIB
    t0 = time.monotonic()
    started = []
    try:
        origin = servers.start_origin(a.work, {"stream": size})
        started.append(origin)
        with open(a.raw, "a") as raw:
            # 1. idle connections, on servers that have served nothing yet
            idle_dir = os.path.join(a.work, "idle")
            os.makedirs(idle_dir, exist_ok=True)
            os.chmod(idle_dir, 0o755)
            for name in ("pooled", "nginx"):
                s = (servers.start_pooled(idle_dir, pooled_bin, origin.port) if name == "pooled"
                     else servers.start_peer(idle_dir, name, origin.port))
                try:
                    time.sleep(0.3)  # let start-up allocations settle
                    rec = hold_idle(s, a.idle, s.port)
                finally:
                    s.stop()
                raw.write(json.dumps(rec) + "\n")
                log(f"§3 idle   {name:<10} {rec['accepted']} conns: RSS {rec['rss_before_kib']}"
                    f" -> {rec['rss_kib']} KiB, {rec['bytes_per_conn']} B/conn "
                    f"(opened in {rec['seconds_to_open']} s)")
            # 2. and 3. streams, through fresh proxies
            proxies = [servers.start_pooled(a.work, pooled_bin, origin.port)]
            started.append(proxies[0])
            for name in PROXIES[1:]:
                proxies.append(servers.start_peer(a.work, name, origin.port))
                started.append(proxies[-1])
            for p in proxies:
                raw.write(json.dumps({"section": 3, "test": "baseline", "target": p.name,
                                      "rss_kib": servers.status_kib(p.pid, "VmRSS")}) + "\n")
            cfgs = [("direct", None)] + [(p.name, p) for p in proxies]
            for rnd in range(1, a.rounds + 1):
                k = (rnd - 1) % len(cfgs)
                for name, server in cfgs[k:] + cfgs[:k]:
                    fast(raw, origin, server, name, size, rnd)
            slow(raw, origin, proxies, a.slow_seconds)
    finally:
        servers.stop_all(started)
    log(f"§3: done in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
