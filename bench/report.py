#!/usr/bin/python3
"""Turn bench/run's raw.jsonl into latest.md (tables, ratios) and PNG bar charts.

    report.py --raw results/raw.jsonl --out results [--mode full|quick] [--pooled-bin BIN]
              [--load BEFORE,AFTER] [--timings S1,S2,S3,TOTAL] [--note TEXT] [--commit C]
    report.py --annotate RAW --pooled-log FILE  # add pooled's counts to §1's via-pooled
                                                # records (by the alias each one used)

Records carry their section (1: the seed experiment, here; 2 and 3: report_loopback.py).
A full run writes latest.md and chart_*.png; a quick run quick.md and quick-chart_*.png.
"""
import argparse
import collections
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse

import report_loopback

CLIENTS = [("naive", "serialized `requests.get`"), ("session", "`requests.Session`"),
           ("futures2", "FuturesSession, 2 workers"), ("futures10", "FuturesSession, 10 workers"),
           ("aiohttp", "aiohttp")]
SEED = {"/delay/1": {"naive": 12.12, "session": 11.22, "futures2": 5.65,
                     "futures10": 1.25, "aiohttp": 1.19}}
TARGET = 1.02


def pooled_log(path):
    """{host: {pooled_requests, pooled_reused, upstream_conns, pooled_https,
    pooled_tls_full, pooled_tls_resumed, pooled_tls_ms}} from a JSON access log: the
    handshakes (and their median tls_ms) are those of each upstream connection's first
    request."""
    per = collections.defaultdict(lambda: [0, 0, set(), 0, 0, 0, []])
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            h = per[d.get("host")]
            h[0] += 1
            h[1] += bool(d.get("reused"))
            h[2].add(d.get("upstream_conn"))
            h[3] += d.get("scheme") == "https"
            if d.get("scheme") == "https" and d.get("upstream_conn_requests") == 1:
                h[5 if d.get("tls_resumed") else 4] += 1
                if d.get("tls_ms") is not None:
                    h[6].append(d["tls_ms"])
    return {k: {"pooled_requests": n, "pooled_reused": r, "upstream_conns": len(c - {None}),
                "pooled_https": s, "pooled_tls_full": f, "pooled_tls_resumed": rs,
                "pooled_tls_ms": med(ms)}
            for k, (n, r, c, s, f, rs, ms) in per.items()}


def annotate(raw, log):
    per = pooled_log(log)
    recs = [json.loads(l) for l in open(raw) if l.strip()]
    for r in recs:
        if r.get("section", 1) == 1 and r["via"] != "direct":
            r.update(per.get(urllib.parse.urlsplit(r["url"]).hostname,
                             {"pooled_requests": 0, "pooled_reused": 0, "upstream_conns": 0}))
    with open(raw, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


# How §1 names its two origins: plain HTTP (the seed's) and HTTPS (nginx with the test
# certificate in front of the same httpbin; "via pooled" = plain HTTP_PROXY clients whose
# requests pooled upgrades to TLS with its tls_origination rule).
PROTO = {
    "http": {"over": "", "direct": "direct", "pooled": "via pooled", "chart": "chart",
             "bar": "via pooled (HTTP_PROXY, cold)", "session": "requests.Session direct",
             "origin": "httpbin/gunicorn"},
    "https": {"over": " over TLS", "direct": "direct HTTPS", "chart": "chart_tls",
              "pooled": "via pooled, TLS origination",
              "bar": "plain via pooled (HTTP_PROXY, TLS origination, cold)",
              "session": "requests.Session direct HTTPS", "origin": "nginx TLS → httpbin"},
}


def chart(out, prefix, ep, rows, n, rtt, proto="http"):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no chart", file=sys.stderr)
        return None
    P = PROTO[proto]
    labels = [c for c, _ in CLIENTS]
    direct = [rows.get((c, "direct")) or 0 for c in labels]
    pooled = [rows.get((c, "pooled")) or 0 for c in labels]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    x = range(len(labels))
    w = 0.38
    b1 = ax.bar([i - w / 2 for i in x], direct, w, label=P["direct"], color="#9aa5b1")
    b2 = ax.bar([i + w / 2 for i in x], pooled, w, label=P["bar"], color="#2f80ed")
    warm = rows.get(("naive", "pooled-warm"))
    if warm:
        ax.bar([len(labels) - 0.0], [warm], w, label="requests.get via warm pooled",
               color="#27ae60")
        labels = labels + ["naive\n(warm pooled)"]
    for bars in (b1, b2):
        for r in bars:
            ax.annotate(f"{r.get_height():.2f}", (r.get_x() + r.get_width() / 2, r.get_height()),
                        ha="center", va="bottom", fontsize=7)
    sess = rows.get(("session", "direct"))
    if sess:
        ax.axhline(sess, ls="--", lw=0.8, color="#555", label=P["session"])
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(f"seconds for {n} requests (median)")
    ax.set_title(f"GET {ep}{P['over']}, RTT {rtt:g} ms (user-space relay), {P['origin']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = prefix + P["chart"] + ep.replace("/", "_") + ".png"
    fig.savefig(os.path.join(out, name))
    plt.close(fig)
    return name


def conns(lg, key, resumed_key=None):
    """Median connection count over runs, with the median resumed handshakes if asked."""
    if not lg:
        return "—"
    c = str(round(med([x.get(key, 0) for x in lg])))
    if resumed_key:
        c += f" ({round(med([x.get(resumed_key, 0) for x in lg]))} resumed)"
    return c


def seed_section(recs, out, prefix):
    """§1: the seed experiment, with latency, then over TLS. Returns (markdown, verdicts)."""
    n = recs[0]["n"]
    rtt = recs[0]["rtt_ms"]
    runs = max(r["run"] for r in recs)
    L = ["## 1. The seed experiment, with latency", "",
         f"N = {n} requests per measurement, median of {runs} run(s). WAN emulated by "
         f"`bench/relay.py`: RTT {rtt:g} ms (connection setup costs 1 RTT, each chunk "
         f"RTT/2 each way). Origin: httpbin under gunicorn (gthread, keep-alive).",
         "Topology: client → pooled (loopback) → relay (RTT) → origin. \"via pooled\" = "
         "same client code with `HTTP_PROXY` pointing at pooled, each measurement to its "
         "own loopback alias of the relay (127.0.0.K), an origin pooled has not seen yet "
         "(cold pool, like a fresh Session's); \"warm\" = one untimed request through it "
         "first. Upstream conns: from pooled's access log, that alias only.", ""]
    V = []
    for proto in ("http", "https"):
        rs = [r for r in recs if r.get("proto", "http") == proto]
        if not rs:
            continue
        if proto == "https":
            L += ["### Over TLS", "",
                  "Origin: nginx (TLS 1.2/1.3, session tickets and cache, keep-alive) with a "
                  "test certificate made at run time, in front of the same gunicorn, behind "
                  "a second relay. Direct: the clients against `https://127.0.0.1:PORT`, "
                  "trusting the test CA (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`), "
                  "verification on. Via pooled: the same plain `http://127.0.0.K:PORT` "
                  "clients as above through `HTTP_PROXY`; pooled's `tls_origination` rule "
                  "for these aliases sends them upstream over TLS (mbedTLS, TLS 1.2 with "
                  "False Start: the request follows pooled's Finished without waiting for "
                  "nginx's), verifying the certificate. Origin TLS conns: connections nginx served in "
                  "that measurement (its access log), and how many resumed a session; "
                  "upstream TLS conns: pooled's access log (handshake of each connection's "
                  "first request). The relay accepts at once and holds bytes for 1 RTT, so "
                  "pooled logs that RTT in `tls_ms`, not `connect_ms`.", ""]
        lines, v = seed_tables(rs, out, prefix, n, rtt, proto)
        L += lines
        V += v
    return L, V


def seed_tables(recs, out, prefix, n, rtt, proto):
    """§1's table, ratios and chart per endpoint, for one origin protocol."""
    P = PROTO[proto]
    tls = proto == "https"
    by = collections.defaultdict(list)
    logs = collections.defaultdict(list)
    for r in recs:
        by[(r["endpoint"], r["client"], r["via"])].append(r["seconds"])
        logs[(r["endpoint"], r["client"], r["via"])].append(r)
    endpoints = list(dict.fromkeys(r["endpoint"] for r in recs))
    L, verdicts = [], []
    for ep in endpoints:
        rows = {(c, v): med(by.get((ep, c, v), [])) for c, _ in CLIENTS
                for v in ("direct", "pooled", "pooled-warm")}
        L += [f"### GET {ep}{P['over']}", ""]
        if tls:
            L += [f"| client | {P['direct']} (s) | {P['pooled']} (s) | pooled / direct | "
                  "origin TLS conns, direct | upstream TLS conns via pooled |",
                  "|---|---:|---:|---:|---:|---:|"]
        else:
            L += ["| client | direct (s) | via pooled (s) | pooled / direct | upstream conns "
                  "via pooled | seed, direct (s) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for c, label in CLIENTS:
            d, p = rows[(c, "direct")], rows[(c, "pooled")]
            if d is None and p is None:
                continue  # not measured (a quick run's TLS rows)
            lp = [x for x in logs.get((ep, c, "pooled"), []) if "pooled_requests" in x]
            cells = [label, fmt(d), fmt(p), fmt(p / d if d and p else None, 3)]
            if tls:
                cells += [conns(logs.get((ep, c, "direct")), "origin_conns", "origin_resumed"),
                          conns(lp, "upstream_conns", "pooled_tls_resumed")]
            else:
                cells += [conns(lp, "upstream_conns"), fmt(SEED.get(ep, {}).get(c))]
            L.append("| " + " | ".join(cells) + " |")
        w = rows[("naive", "pooled-warm")]
        nd, sd, npool = rows[("naive", "direct")], rows[("session", "direct")], rows[("naive", "pooled")]
        if w is not None:
            lw = [x for x in logs.get((ep, "naive", "pooled-warm"), []) if "pooled_requests" in x]
            L.append(f"| serialized `requests.get`, warm pooled | — | {fmt(w)} | "
                     f"{fmt(w / nd if nd else None, 3)} | "
                     + (f"— | {conns(lw, 'upstream_conns', 'pooled_tls_resumed')} |" if tls
                        else f"{conns(lw, 'upstream_conns') if lw else '0'} | — |"))
        L += ["", "Ratios that matter (medians):", ""]
        plain_client = "plain-HTTP " if tls else ""
        if npool and sd:
            r = npool / sd
            ok = r <= TARGET
            verdicts.append((ep, r, ok))
            L.append(f"- naive {plain_client}`requests.get` {P['pooled']} / `requests.Session` "
                     f"{P['direct']}: **{r:.3f}** (target ≤ {TARGET}: {'met' if ok else 'NOT met'})")
        if w and sd:
            L.append(f"- naive via warm pooled / `requests.Session` {P['direct']}: **{w / sd:.3f}**")
        if npool and nd:
            L.append(f"- naive {P['pooled']} / naive {P['direct']}: **{npool / nd:.3f}** "
                     f"({'saves' if npool <= nd else 'adds'} {abs(nd - npool):.2f} s "
                     f"{'of' if npool <= nd else 'to'} {nd:.2f} s)"
                     + (" (the issue expects ~0.35 on /get, which holds against TLS 1.2 "
                        "clients: naive direct over TLS 1.3 pays 3 RTT per request, not 4)"
                        if tls and ep == "/get" else ""))
        if sd and nd:
            L.append(f"- `requests.Session` {P['direct']} / naive {P['direct']}: {sd / nd:.3f}"
                     + ("" if tls else f" (seed: {11.22 / 12.12:.3f})"))
        if tls:
            ver = {v: sorted({x.get("tls_version") for c, _ in CLIENTS
                              for x in logs.get((ep, c, v), []) if x.get("tls_version")})
                   for v in ("direct", "pooled")}
            L.append(f"- TLS version at the origin: direct {', '.join(ver['direct']) or '?'}; "
                     f"via pooled {', '.join(ver['pooled']) or '?'}")
            hs = {c: med([x["pooled_tls_ms"] for x in logs.get((ep, c, "pooled"), [])
                          if x.get("pooled_tls_ms") is not None]) for c in ("naive", "aiohttp")}
            if hs["naive"] is not None:
                L.append(f"- pooled's upstream handshake (`tls_ms`, median): one connection "
                         f"(naive) {fmt(hs['naive'], 0)} ms"
                         + (f", {n} at once (aiohttp) {fmt(hs['aiohttp'], 0)} ms"
                            if hs["aiohttp"] is not None else "")
                         + f"; through the relay the request can go at the earliest after "
                         f"{2 * rtt:g} ms (setup RTT + 1 RTT: TLS 1.3, or TLS 1.2 with "
                         f"False Start), {3 * rtt:g} ms for TLS 1.2 without it")
        L.append("")
        L.append("All runs (s): " + "; ".join(
            f"{c}/{v}: " + ", ".join(f"{x:.3f}" for x in by[(ep, c, v)])
            for c, _ in CLIENTS for v in ("direct", "pooled") if by.get((ep, c, v))))
        L.append("")
        name = chart(out, prefix, ep, rows, n, rtt, proto)
        if name:
            L += [f"![GET {ep}{P['over']}]({name})", ""]
    V = [f"§1 GET {ep}{P['over']}: naive via pooled / Session {P['direct']} = {r:.3f} "
         f"(target ≤ {TARGET})" for ep, r, ok in verdicts if not ok]
    return L, V


def report(raw, out, mode, pooled_bin, load, timings, note=None, commit=None):
    recs = [json.loads(l) for l in open(raw) if l.strip()]
    if not recs:
        sys.exit("report.py: no measurements")
    prefix = "quick-" if mode == "quick" else ""
    try:
        commit = commit or subprocess.run(
            ["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short",
             "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    L = [f"# pooled benchmarks ({mode} run)", "",
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{commit}`, "
         f"{platform.node()} ({os.cpu_count()} CPUs, shared), Python "
         f"{platform.python_version()}, binary `{pooled_bin or '?'}`."]
    if note:
        L.append(note)
    if load:
        L.append(f"Load average (1 min) at start {load[0]}, at end {load[1]}: other work ran on "
                 "this machine meanwhile, so figures are noisy; ratios come from the same rounds.")
    if timings:
        L.append(f"Wall time: §1 {timings[0]} s, §2 {timings[1]} s, §3 {timings[2]} s, "
                 f"total {timings[3]} s.")
    L.append("")
    sections = collections.defaultdict(list)
    for r in recs:
        sections[r.get("section", 1)].append(r)
    verdicts = []
    parts = {1: lambda rs: seed_section(rs, out, prefix),
             2: lambda rs: report_loopback.section2(rs, out, prefix),
             3: lambda rs: report_loopback.section3(rs, out, prefix)}
    body = []
    for sec in sorted(sections):
        lines, v = parts[sec](sections[sec])
        body += lines
        verdicts += v
    L += ["Targets missed: " + ("none." if not verdicts else ""), ""]
    L += [f"- {v}" for v in verdicts] + ([""] if verdicts else [])
    name = "quick.md" if mode == "quick" else "latest.md"
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join(L + body))
    for v in verdicts:
        print(f"report.py: target missed: {v}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--out")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--pooled-log")
    ap.add_argument("--annotate")
    ap.add_argument("--pooled-bin")
    ap.add_argument("--load")
    ap.add_argument("--timings")
    ap.add_argument("--note", help="a line for the header (e.g. where the binary came from)")
    ap.add_argument("--commit", help="the checkout's commit (default: git HEAD now)")
    a = ap.parse_args()
    if a.annotate:
        return annotate(a.annotate, a.pooled_log)
    report(a.raw, a.out, a.mode, a.pooled_bin, a.load and a.load.split(","),
           a.timings and a.timings.split(","), a.note, a.commit)


if __name__ == "__main__":
    main()
