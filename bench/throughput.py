#!/usr/bin/python3
"""bench §2: throughput and added latency on loopback, pooled against the proxies users pick.

    throughput.py --pooled BIN --work DIR --raw FILE [--rounds 3] [--seconds 10]
                  [--c1-seconds 5] [--bodies 100b,1k,64k] [--no-log-row]
                  [--c1-configs direct,pooled,nginx]

wrk -t1 -c50 against the origin nginx directly and through each proxy, for each body size;
then wrk -t1 -c1 (100 B) for the latency a proxy adds (each proxy right after a run of
the origin direct: the difference of the two is its added latency). Both include the
"floor" (peers/floor_relay.c, built by bench/run into --work): a byte relay with no HTTP
work, the least CPU per request and latency any connection-pooling proxy could reach here.
One origin and one instance of each proxy serve the whole section; each round runs every
configuration once, in an order rotated per round (the machine is shared and noisy:
medians over rounds, ratios to nginx from the same rounds). Per run: req/s, p50/p99,
connections the origin accepted during it (stub_status), the proxy's CPU seconds (its
whole process tree, /proc/PID/stat). Appends one JSON line per run to --raw.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import servers

BENCH = os.path.dirname(os.path.abspath(__file__))
SIZES = {"100b": 100, "1k": 1024, "64k": 65536}


def targets(origin, pooled, pooled_log, peers):
    """(name, server, wrk URL, absolute-form target or None) per configuration."""
    o = f"http://127.0.0.1:{origin.port}"
    out = [("direct", None, o + "/{body}", None),
           ("pooled", pooled, f"http://127.0.0.1:{pooled.port}/", o + "/{body}"),
           ("pooled-sidecar", pooled, f"http://127.0.0.1:{pooled.ports[1]}/{{body}}", None)]
    if pooled_log:
        out.append(("pooled-log", pooled_log, f"http://127.0.0.1:{pooled_log.port}/",
                    o + "/{body}"))
    for p in peers:
        if p.kind == "forward":
            out.append((p.name, p, f"http://127.0.0.1:{p.port}/", o + "/{body}"))
        else:
            out.append((p.name, p, f"http://127.0.0.1:{p.port}/{{body}}", None))
    return out


def check(name, url, target, size):
    """One request with curl first: every configuration must really serve the body."""
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-m", "10"]
    if target:
        cmd += ["-x", url, target]
    else:
        cmd.append(url)
    got = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    if got != f"200 {size}":
        sys.exit(f"throughput.py: {name}: {' '.join(cmd)} gave {got!r}, not 200 {size}")


def wrk(url, target, conns, seconds, log):
    env = dict(os.environ, WRK_TARGET=target or "")
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "--latency",
           "-s", os.path.join(BENCH, "wrk.lua"), url]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    log.write(f"$ WRK_TARGET={target or ''} {' '.join(cmd)}\n{p.stdout}{p.stderr}\n")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        sys.exit(f"throughput.py: wrk failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(lines[-1])


def run_one(raw, log, origin, cfg, body, conns, seconds, rnd, pair=None):
    name, server, url, target = cfg
    url, target = url.format(body=body), target and target.format(body=body)
    acc0 = servers.origin_accepts(origin)
    cpu0 = servers.cpu_seconds(server.pid) if server else None
    w = wrk(url, target, conns, seconds, log)
    cpu = servers.cpu_seconds(server.pid) - cpu0 if server else None
    acc = servers.origin_accepts(origin) - acc0
    secs = w["duration_us"] / 1e6
    # wrk counts a connection the server closes as a read error: tinyproxy closes every
    # client connection after its response. Failures are the status and timeout counts.
    failed = w["errors_status"] + w["errors_timeout"] + w["errors_connect"]
    rec = {"section": 2, "conns": conns, "round": rnd, "target": name, "body": body,
           "seconds": round(secs, 3), "requests": w["requests"],
           "rps": round(w["requests"] / secs, 1), "p50_us": w["p50_us"], "p99_us": w["p99_us"],
           "failed": failed, "closed_by_server": w["errors_read"] + w["errors_write"],
           "upstream_conns": acc,
           "cpu_s": None if cpu is None else round(cpu, 2),
           "req_per_cpu_s": round(w["requests"] / cpu) if cpu else None}
    if pair:
        rec["pair"] = pair  # the origin direct, measured just before this proxy
    raw.write(json.dumps(rec) + "\n")
    raw.flush()
    cpu_txt = "" if cpu is None else f", {cpu:.2f} CPU s"
    print(f"§2 r{rnd} c{conns} {body:>4} {name:<15} {rec['rps']:>9.0f} req/s, p50 "
          f"{w['p50_us']} us, p99 {w['p99_us']} us, {acc} upstream conns{cpu_txt}"
          f"{f', {failed} FAILED' if failed else ''}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pooled", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--c1-seconds", type=int, default=5)
    ap.add_argument("--bodies", default="100b,1k,64k")
    ap.add_argument("--c1-configs", default="",
                    help="comma-separated subset for the -c1 runs (default: all)")
    ap.add_argument("--no-log-row", action="store_true",
                    help="skip the pooled-with-access-log configuration")
    a = ap.parse_args()
    bodies = a.bodies.split(",")
    started = []
    t0 = time.monotonic()
    try:
        origin = servers.start_origin(a.work, {b: SIZES[b] for b in set(bodies) | {"100b"}})
        started.append(origin)
        pooled = servers.start_pooled(a.work, os.path.abspath(a.pooled), origin.port)
        started.append(pooled)
        pooled_log = None
        if not a.no_log_row:
            pooled_log = servers.start_pooled(a.work, os.path.abspath(a.pooled), origin.port,
                                                access_log=True)
            started.append(pooled_log)
        peers = []
        for name in ("nginx", "haproxy", "squid", "tinyproxy", "floor"):
            peers.append(servers.start_peer(a.work, name, origin.port))
            started.append(peers[-1])
        cfgs = targets(origin, pooled, pooled_log, peers)
        for cfg in cfgs:
            for b in set(bodies) | {"100b"}:
                check(cfg[0], cfg[2].format(body=b), cfg[3] and cfg[3].format(body=b), SIZES[b])
        print(f"§2: servers up and checked in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        with open(a.raw, "a") as raw, open(os.path.join(a.work, "wrk.log"), "w") as log:
            for rnd in range(1, a.rounds + 1):
                k = (rnd - 1) % len(cfgs)
                order = cfgs[k:] + cfgs[:k]  # alternate: each round starts elsewhere
                for body in bodies:
                    for cfg in order:
                        if cfg[0] == "pooled-log" and body != "1k":
                            continue  # the access log's cost: one body size is enough
                        run_one(raw, log, origin, cfg, body, 50, a.seconds, rnd)
                # One connection: each proxy right after a run of the origin direct, so
                # the latency it adds is a difference of neighbours, not of moments
                # minutes apart on a machine whose load drifts.
                c1 = a.c1_configs.split(",") if a.c1_configs else None
                for cfg in order:
                    if cfg[0] not in ("direct", "pooled-log") and (not c1 or cfg[0] in c1):
                        run_one(raw, log, origin, cfgs[0], "100b", 1, a.c1_seconds, rnd,
                                pair=cfg[0])
                        run_one(raw, log, origin, cfg, "100b", 1, a.c1_seconds, rnd)
    finally:
        servers.stop_all(started)
    print(f"§2: done in {time.monotonic() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
