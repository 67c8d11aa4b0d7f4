#!/usr/bin/python3
"""Turn bench/run's raw.jsonl into latest.md (tables, ratios) and PNG bar charts.

    report.py --raw results/raw.jsonl --out results [--mode full|quick]
    report.py --pooled-log FILE     # summary of one pooled access log, as JSON
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

CLIENTS = [("naive", "serialized `requests.get`"), ("session", "`requests.Session`"),
           ("futures2", "FuturesSession, 2 workers"), ("futures10", "FuturesSession, 10 workers"),
           ("aiohttp", "aiohttp")]
SEED = {"/delay/1": {"naive": 12.12, "session": 11.22, "futures2": 5.65,
                     "futures10": 1.25, "aiohttp": 1.19}}
TARGET = 1.02


def pooled_log(path):
    n = reused = 0
    conns = set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            n += 1
            reused += bool(d.get("reused"))
            conns.add(d.get("upstream_conn"))
    print(json.dumps({"pooled_requests": n, "pooled_reused": reused,
                      "upstream_conns": len(conns - {None})}))


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def chart(out, ep, rows, n, rtt):
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
    name = "chart" + ep.replace("/", "_") + ".png"
    fig.savefig(os.path.join(out, name))
    plt.close(fig)
    return name


def report(raw, out, mode):
    recs = [json.loads(l) for l in open(raw) if l.strip()]
    if not recs:
        sys.exit("report.py: no measurements")
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
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)),
                                 "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    L = [f"# pooled benchmark: the seed experiment ({mode} run)", "",
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{commit}`, "
         f"{platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}.",
         f"N = {n} requests per measurement, median of {runs} runs. WAN emulated by "
         f"`bench/relay.py`: RTT {rtt:g} ms (connection setup costs 1 RTT, each chunk "
         f"RTT/2 each way). Origin: httpbin under gunicorn (gthread, keep-alive).",
         "Topology: client → pooled (loopback) → relay (RTT) → origin. \"via pooled\" = "
         "same client code with `HTTP_PROXY` pointing at a freshly started pooled (cold "
         "pool); \"warm\" = one untimed request through it first.", ""]
    verdicts = []
    charts = []
    for ep in endpoints:
        rows = {(c, v): med(by.get((ep, c, v), [])) for c, _ in CLIENTS
                for v in ("direct", "pooled", "pooled-warm")}
        L += [f"## GET {ep}", "",
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
        name = chart(out, ep, rows, n, rtt)
        if name:
            charts.append(name)
            L += [f"![GET {ep}]({name})", ""]
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(L))
    for ep, r, ok in verdicts:
        print(f"report.py: GET {ep}: naive via pooled / Session direct = {r:.3f} "
              f"({'target met' if ok else 'target NOT met'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--out")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--pooled-log")
    a = ap.parse_args()
    if a.pooled_log:
        return pooled_log(a.pooled_log)
    report(a.raw, a.out, a.mode)


if __name__ == "__main__":
    main()
