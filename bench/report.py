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
    """{host: {pooled_requests, pooled_reused, upstream_conns}} from a JSON access log."""
    per = collections.defaultdict(lambda: [0, 0, set()])
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
    return {k: {"pooled_requests": n, "pooled_reused": r, "upstream_conns": len(c - {None})}
            for k, (n, r, c) in per.items()}


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


def chart(out, prefix, ep, rows, n, rtt):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no chart", file=sys.stderr)
        return None
    labels = [c for c, _ in CLIENTS]
    direct = [rows.get((c, "direct")) or 0 for c in labels]
    pooled = [rows.get((c, "pooled")) or 0 for c in labels]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    x = range(len(labels))
    w = 0.38
    b1 = ax.bar([i - w / 2 for i in x], direct, w, label="direct", color="#9aa5b1")
    b2 = ax.bar([i + w / 2 for i in x], pooled, w, label="via pooled (HTTP_PROXY, cold)",
                color="#2f80ed")
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
        ax.axhline(sess, ls="--", lw=0.8, color="#555", label="requests.Session direct")
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(f"seconds for {n} requests (median)")
    ax.set_title(f"GET {ep}, RTT {rtt:g} ms (user-space relay), httpbin/gunicorn")
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = prefix + "chart" + ep.replace("/", "_") + ".png"
    fig.savefig(os.path.join(out, name))
    plt.close(fig)
    return name


def seed_section(recs, out, prefix):
    """§1: the seed experiment, with latency. Returns (markdown lines, verdict lines)."""
    by = collections.defaultdict(list)
    logs = collections.defaultdict(list)
    for r in recs:
        by[(r["endpoint"], r["client"], r["via"])].append(r["seconds"])
        if "pooled_requests" in r:
            logs[(r["endpoint"], r["client"], r["via"])].append(r)
    n = recs[0]["n"]
    rtt = recs[0]["rtt_ms"]
    runs = max(r["run"] for r in recs)
    endpoints = list(dict.fromkeys(r["endpoint"] for r in recs))
    L = ["## 1. The seed experiment, with latency", "",
         f"N = {n} requests per measurement, median of {runs} run(s). WAN emulated by "
         f"`bench/relay.py`: RTT {rtt:g} ms (connection setup costs 1 RTT, each chunk "
         f"RTT/2 each way). Origin: httpbin under gunicorn (gthread, keep-alive).",
         "Topology: client → pooled (loopback) → relay (RTT) → origin. \"via pooled\" = "
         "same client code with `HTTP_PROXY` pointing at pooled, each measurement to its "
         "own loopback alias of the relay (127.0.0.K), an origin pooled has not seen yet "
         "(cold pool, like a fresh Session's); \"warm\" = one untimed request through it "
         "first. Upstream conns: from pooled's access log, that alias only.", ""]
    verdicts = []
    charts = []
    for ep in endpoints:
        rows = {(c, v): med(by.get((ep, c, v), [])) for c, _ in CLIENTS
                for v in ("direct", "pooled", "pooled-warm")}
        L += [f"### GET {ep}", "",
              "| client | direct (s) | via pooled (s) | pooled / direct | upstream conns "
              "via pooled | seed, direct (s) |",
              "|---|---:|---:|---:|---:|---:|"]
        for c, label in CLIENTS:
            d, p = rows[(c, "direct")], rows[(c, "pooled")]
            lg = logs.get((ep, c, "pooled"), [])
            conns = "—" if not lg else str(round(med([x["upstream_conns"] for x in lg])))
            seed = SEED.get(ep, {}).get(c)
            L.append(f"| {label} | {fmt(d)} | {fmt(p)} | "
                     f"{fmt(p / d if d and p else None, 3)} | {conns} | {fmt(seed)} |")
        w = rows[("naive", "pooled-warm")]
        if w is not None:
            L.append(f"| serialized `requests.get`, warm pooled | — | {fmt(w)} | "
                     f"{fmt(w / rows[('naive', 'direct')] if rows[('naive', 'direct')] else None, 3)}"
                     f" | {round(med([x['upstream_conns'] for x in logs.get((ep, 'naive', 'pooled-warm'), [])] or [0]))} | — |")
        nd, sd, npool = rows[("naive", "direct")], rows[("session", "direct")], rows[("naive", "pooled")]
        L += ["", "Ratios that matter (medians):", ""]
        if npool and sd:
            r = npool / sd
            ok = r <= TARGET
            verdicts.append((ep, r, ok))
            L.append(f"- naive `requests.get` via pooled / `requests.Session` direct: "
                     f"**{r:.3f}** (target ≤ {TARGET}: {'met' if ok else 'NOT met'})")
        if w and sd:
            L.append(f"- naive via warm pooled / `requests.Session` direct: **{w / sd:.3f}**")
        if npool and nd:
            L.append(f"- naive via pooled / naive direct: **{npool / nd:.3f}** "
                     f"(saves {nd - npool:.2f} s of {nd:.2f} s)")
        if sd and nd:
            L.append(f"- `requests.Session` direct / naive direct: {sd / nd:.3f} "
                     f"(seed: {11.22 / 12.12:.3f})")
        L.append("")
        L.append("All runs (s): " + "; ".join(
            f"{c}/{v}: " + ", ".join(f"{x:.3f}" for x in by[(ep, c, v)])
            for c, _ in CLIENTS for v in ("direct", "pooled") if by.get((ep, c, v))))
        L.append("")
        name = chart(out, prefix, ep, rows, n, rtt)
        if name:
            charts.append(name)
            L += [f"![GET {ep}]({name})", ""]
    V = [f"§1 GET {ep}: naive via pooled / Session direct = {r:.3f} (target ≤ {TARGET})"
         for ep, r, ok in verdicts if not ok]
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
