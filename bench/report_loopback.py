"""The §2 (throughput) and §3 (streaming, memory) parts of the benchmark report.

section2(recs, out, prefix) and section3(recs, out, prefix) return (markdown lines,
verdict lines); they also write their PNG charts into `out`, names starting with `prefix`.
"""
import collections
import os
import statistics

ORDER = ["direct", "floor", "pooled", "pooled-sidecar", "pooled-log", "nginx", "haproxy",
         "squid", "tinyproxy"]
LABEL = {"direct": "origin direct (nginx)",
         "floor": "floor: byte relay, no HTTP (`bench/peers/floor_relay.c`)",
         "pooled": "**pooled**, forward proxy",
         "pooled-sidecar": "**pooled**, sidecar route", "pooled-log": "pooled, forward, access log on",
         "nginx": "nginx, reverse proxy (keepalive 64)", "haproxy": "HAProxy (http-reuse always)",
         "squid": "squid, forward (no cache)", "tinyproxy": "tinyproxy, forward"}
BODY = {"100b": "100 B", "1k": "1 KiB", "64k": "64 KiB"}
POOLED = ("pooled", "pooled-sidecar")
MIB = 1 << 20


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, nd=0, scale=1.0):
    if x is None:
        return "—"
    return f"{x * scale:,.{nd}f}"


def mark(ok):
    return "✓" if ok else "✗"


def per_round_ratio(by_round, name, base, key):
    """Median over rounds of name's KEY / base's KEY in the same round."""
    rs = []
    for recs in by_round.values():
        a, b = recs.get(name), recs.get(base)
        if a and b and a.get(key) and b.get(key):
            rs.append(a[key] / b[key])
    return med(rs)


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def section2(recs, out, prefix):
    c50 = [r for r in recs if r["conns"] == 50]
    c1 = [r for r in recs if r["conns"] == 1]
    rounds = max(r["round"] for r in recs)
    secs = med([r["seconds"] for r in c50])
    L = ["## 2. Throughput and added latency on loopback", "",
         f"`wrk -t1 -c50 -d{secs:.0f}s` per configuration and body size, {rounds} round(s), "
         "configurations alternated (each round starts at another one); medians over rounds. "
         "\"× nginx\" = median of the per-round ratios to the nginx reverse proxy. Upstream "
         "conns = connections the origin accepted during the run (nginx `stub_status`). CPU = "
         "the proxy's whole process tree (utime+stime from `/proc/PID/stat`). Every proxy runs "
         "one worker/thread, access logs off (pooled's default is on: see its own row). "
         "Origin: nginx, 1 worker, static files, keep-alive never closed by it. The floor "
         "row is a reference, not a proxy: one epoll loop, each client paired at accept "
         "with its own upstream connection, one read per readable socket and the loop "
         "turn's sends in one io_uring submit (pooled's syscall pattern), no HTTP parsing: "
         "the least CPU per request a proxy built this way could spend on this kernel.", ""]
    V = []
    bodies = [b for b in BODY if any(r["body"] == b for r in c50)]
    table = {}
    of_floor = {}  # body -> {name: median of per-round req per CPU-s / the floor's}
    for body in bodies:
        rs = [r for r in c50 if r["body"] == body]
        by_round = collections.defaultdict(dict)
        for r in rs:
            by_round[r["round"]][r["target"]] = r
        names = [n for n in ORDER if any(r["target"] == n for r in rs)]
        of_floor[body] = {n: per_round_ratio(by_round, n, "floor", "req_per_cpu_s")
                          for n in names if n in POOLED + ("nginx",)}
        L += [f"### {BODY[body]} responses, 50 connections", "",
              "| configuration | req/s | × nginx | p50 (ms) | p99 (ms) | upstream conns | "
              "proxy CPU (s) | req per CPU-s | × nginx | failed |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n in names:
            mine = [r for r in rs if r["target"] == n]
            row = {k: med([r[k] for r in mine]) for k in
                   ("rps", "p50_us", "p99_us", "upstream_conns", "cpu_s", "req_per_cpu_s")}
            row["rps_x"] = per_round_ratio(by_round, n, "nginx", "rps")
            row["eff_x"] = per_round_ratio(by_round, n, "nginx", "req_per_cpu_s")
            row["p99_x"] = per_round_ratio(by_round, n, "nginx", "p99_us")
            failed = sum(r["failed"] for r in mine)
            closed = med([r["closed_by_server"] for r in mine])
            table[(body, n)] = row
            note = f"{failed}" + (f" ({closed:,.0f} conns closed by it)" if closed else "")
            L.append(f"| {LABEL[n]} | {f(row['rps'])} | {f(row['rps_x'], 2)} | "
                     f"{f(row['p50_us'], 2, 1e-3)} | {f(row['p99_us'], 2, 1e-3)} | "
                     f"{f(row['upstream_conns'])} | {f(row['cpu_s'], 2)} | "
                     f"{f(row['req_per_cpu_s'])} | {f(row['eff_x'], 2)} | {note} |")
        L.append("")
    # one connection: the latency a proxy adds
    if c1:
        by_round = collections.defaultdict(dict)
        for r in c1:
            # the origin direct is measured just before each proxy ("pair"): added
            # latency = proxy - its own neighbour, median over rounds
            by_round[r["round"]][(r["target"], r["pair"]) if r.get("pair") else r["target"]] = r
        names = [n for n in ORDER if any(r["target"] == n for r in c1)]
        L += [f"### One connection (`wrk -t1 -c1`, 100 B): latency added over the origin direct",
              "", "Each proxy's run follows a run of the origin direct; added = the "
              "difference between the two, median over rounds (the direct row: all its runs).",
              "", "| configuration | req/s | p50 (µs) | p99 (µs) | added p50 (µs) | "
              "added p99 (µs) |", "|---|---:|---:|---:|---:|---:|"]
        added = {}
        for n in names:
            mine = [r for r in c1 if r["target"] == n]
            a50 = med([rr[n]["p50_us"] - rr[("direct", n)]["p50_us"]
                       for rr in by_round.values() if n in rr and ("direct", n) in rr])
            a99 = med([rr[n]["p99_us"] - rr[("direct", n)]["p99_us"]
                       for rr in by_round.values() if n in rr and ("direct", n) in rr])
            added[n] = (a50, a99)
            L.append(f"| {LABEL[n]} | {f(med([r['rps'] for r in mine]))} | "
                     f"{f(med([r['p50_us'] for r in mine]))} | {f(med([r['p99_us'] for r in mine]))} | "
                     f"{'—' if n == 'direct' else f(a50)} | {'—' if n == 'direct' else f(a99)} |")
        L.append("")
    # targets
    L += ["### Targets (issue 4)", "", "| target | " + " | ".join(
        f"{LABEL[p].replace('**', '')}, {BODY[b]}" for p in POOLED for b in bodies) + " |",
          "|---|" + "---:|" * (len(POOLED) * len(bodies))]

    def line(title, fn):
        cells = []
        for p in POOLED:
            for b in bodies:
                row, ref = table.get((b, p)), table.get((b, "nginx"))
                cells.append("—" if not row or not ref else fn(row, ref))
                if "✗" in cells[-1]:
                    V.append(f"§2 {title}, {p}, {BODY[b]}: {cells[-1]}")
        L.append(f"| {title} | " + " | ".join(cells) + " |")

    line("req/s ≥ 1.0 × nginx", lambda r, n: f"{r['rps_x']:.2f} {mark(r['rps_x'] >= 1.0)}")
    line("req per CPU-s ≥ 1.25 × nginx",
         lambda r, n: f"{r['eff_x']:.2f} {mark(r['eff_x'] >= 1.25)}" if r["eff_x"] else "—")
    line("p99 ≤ nginx", lambda r, n: f"{r['p99_us'] / 1e3:.2f} vs {n['p99_us'] / 1e3:.2f} ms "
         f"{mark(r['p99_us'] <= n['p99_us'])}")
    L.append("")
    # How far from the floor: no proxy can beat it, so 1.25 × nginx is reachable only if
    # the floor itself is above 1.25 × nginx. Lines only: the verdicts stay the targets'.
    floor_lines = []
    for b in bodies:
        fx = (table.get((b, "floor")) or {}).get("eff_x")
        shares = [f"{n.replace('-', ' ')} {of_floor[b][n]:.2f}"
                  for n in POOLED + ("nginx",) if of_floor[b].get(n)]
        if fx and shares:
            floor_lines.append(
                f"- {BODY[b]}: {', '.join(shares)} × the floor; the floor = {fx:.2f} × "
                f"nginx, so the 1.25 × nginx target = {1.25 / fx:.2f} × the floor")
    if floor_lines:
        L += ["Requests per CPU-second against the floor, the byte relay (median of "
              "per-round ratios; it is the most a proxy with its syscall pattern could "
              "reach here, so a ratio above 1 is noise):", ""]
        L += floor_lines + [""]
    if c1 and "nginx" in added:
        for p in POOLED:
            if p in added and added[p][0] is not None:
                ok = added[p][0] <= added["nginx"][0]
                L.append(f"- added p50 at one connection, {LABEL[p]}: {added[p][0]:.0f} µs vs "
                         f"nginx {added['nginx'][0]:.0f} µs (target ≤ nginx) {mark(ok)}")
                if not ok:
                    V.append(f"§2 added p50 at -c1, {p}: {added[p][0]:.0f} µs > nginx "
                             f"{added['nginx'][0]:.0f} µs")
        L.append("")
    name = chart2(out, prefix, table, bodies)
    if name:
        L += [f"![§2 throughput]({name})", ""]
    return L, V


def chart2(out, prefix, table, bodies):
    plt = _plt()
    if not plt:
        return None
    names = [n for n in ORDER if any((b, n) in table for b in bodies)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    w = 0.8 / len(bodies)
    colors = ["#9aa5b1", "#2f80ed", "#27ae60"]
    for ax, key, title in ((axes[0], "rps", "requests/s (50 connections)"),
                           (axes[1], "req_per_cpu_s", "requests per proxy CPU-second")):
        for i, b in enumerate(bodies):
            vals = [(table.get((b, n)) or {}).get(key) or 0 for n in names]
            ax.bar([x + (i - (len(bodies) - 1) / 2) * w for x in range(len(names))], vals, w,
                   label=BODY[b], color=colors[i % len(colors)])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("pooled-", "pooled\n") for n in names], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("wrk -t1 -c50 on loopback, medians (1 worker per proxy)", fontsize=9)
    fig.tight_layout()
    name = prefix + "chart_throughput.png"
    fig.savefig(os.path.join(out, name))
    plt.close(fig)
    return name


def section3(recs, out, prefix):
    streams = [r for r in recs if r["test"] == "stream"]
    slows = {r["target"]: r for r in recs if r["test"] == "slow"}
    idles = {r["target"]: r for r in recs if r["test"] == "idle"}
    base = {r["target"]: r for r in recs if r["test"] == "baseline"}
    V = []
    L = ["## 3. Streaming and memory", ""]
    if streams:
        size = streams[0]["bytes"]
        rounds = max(r["round"] for r in streams)
        names = [n for n in ORDER if any(r["target"] == n for r in streams)]
        mbs = {n: med([r["mb_s"] for r in streams if r["target"] == n]) for n in names}
        hwm = {n: max([r["hwm_kib"] or 0 for r in streams if r["target"] == n]) for n in names}
        peers = [n for n in names if n not in ("direct",) and not n.startswith("pooled")]
        best = max(peers, key=lambda n: mbs[n]) if peers else None
        L += [f"A {size / MIB:,.0f} MiB response (sparse file on the origin nginx) through each "
              f"proxy to `curl -o /dev/null`, {rounds} round(s), median MB/s. Peak RSS = "
              "`VmHWM` summed over the proxy's processes, freshly started for this section.", "",
              "| configuration | MB/s | × best peer | peak RSS (MiB) | RSS at start (MiB) |",
              "|---|---:|---:|---:|---:|"]
        for n in names:
            L.append(f"| {LABEL[n]} | {f(mbs[n])} | "
                     f"{f(mbs[n] / mbs[best], 2) if best and n != 'direct' else '—'} | "
                     f"{f(hwm[n] / 1024, 1) if n != 'direct' else '—'} | "
                     f"{f(base[n]['rss_kib'] / 1024, 1) if n in base else '—'} |")
        L.append("")
    if slows:
        secs = next(iter(slows.values()))["seconds"]
        L += [f"The same response to `curl --limit-rate 20M`, stopped after {secs} s, one "
              "client per proxy at once, on the proxies that just served the rounds above: RSS "
              "growth over their RSS just before (sampled every 0.2 s), and bytes written "
              "to files meanwhile (open regular files, unlinked temp files included, and its "
              "directory).", "",
              "| configuration | client received (MiB) | RSS growth (MiB) | written to files (MiB) |",
              "|---|---:|---:|---:|"]
        for n in ORDER:
            if n in slows:
                s = slows[n]
                L.append(f"| {LABEL[n]} | {f(s['client_bytes'] / MIB)} | "
                         f"{f(s['rss_growth_kib'] / 1024, 2)} | {f(s['file_bytes'] / MIB, 1)} |")
        L.append("")
    if idles:
        n0 = next(iter(idles.values()))["conns"]
        L += [f"{n0:,} idle client connections (connected, nothing sent) held open on a fresh "
              "server: RSS growth / connections it accepted (its open fds).", "",
              "| configuration | accepted | RSS before → after (MiB) | bytes per connection |",
              "|---|---:|---:|---:|"]
        for n in ORDER:
            if n in idles:
                i = idles[n]
                L.append(f"| {LABEL[n]} | {i['accepted']:,} | {i['rss_before_kib'] / 1024:.1f} → "
                         f"{i['rss_kib'] / 1024:.1f} | {i['bytes_per_conn']:,} |")
        L.append("")
    # targets
    L += ["### Targets (issue 4)", ""]
    if streams and best and "pooled" in mbs:
        r = mbs["pooled"] / mbs[best]
        L.append(f"- MB/s ≥ 1.25 × the best peer ({best}, {mbs[best]:,.0f} MB/s): pooled "
                 f"{mbs['pooled']:,.0f} MB/s = {r:.2f} × {mark(r >= 1.25)}")
        ok = hwm["pooled"] <= 8 * 1024
        L.append(f"- peak RSS ≤ 8 MiB: pooled {hwm['pooled'] / 1024:.1f} MiB {mark(ok)}")
        if r < 1.25:
            V.append(f"§3 MB/s: pooled {r:.2f} × {best}")
        if not ok:
            V.append(f"§3 peak RSS: pooled {hwm['pooled'] / 1024:.1f} MiB")
    if "pooled" in slows:
        s = slows["pooled"]
        ok = s["rss_growth_kib"] < 1024 and s["file_bytes"] == 0
        L.append(f"- slow client adds < 1 MiB and nothing on disk: pooled +"
                 f"{s['rss_growth_kib'] / 1024:.2f} MiB, {s['file_bytes']:,} bytes in files "
                 f"{mark(ok)}")
        if not ok:
            V.append("§3 slow client: pooled grew or wrote files")
    if "pooled" in idles and "nginx" in idles:
        a, b = idles["pooled"]["bytes_per_conn"], idles["nginx"]["bytes_per_conn"]
        L.append(f"- memory per idle client connection ≤ nginx's: pooled {a:,} B vs nginx "
                 f"{b:,} B {mark(a <= b)}")
        if a > b:
            V.append(f"§3 idle: pooled {a} B/conn > nginx {b} B/conn")
    L.append("")
    name = chart3(out, prefix, mbs, hwm) if streams else None
    if name:
        L += [f"![§3 streaming]({name})", ""]
    return L, V


def chart3(out, prefix, mbs, hwm):
    plt = _plt()
    if not plt:
        return None
    names = list(mbs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    col = ["#2f80ed" if n.startswith("pooled") else "#9aa5b1" for n in names]
    axes[0].bar(range(len(names)), [mbs[n] for n in names], color=col)
    axes[0].set_title("MB/s, one large response to curl", fontsize=9)
    prox = [n for n in names if n != "direct"]
    axes[1].bar(range(len(prox)), [hwm[n] / 1024 for n in prox],
                color=["#2f80ed" if n.startswith("pooled") else "#9aa5b1" for n in prox])
    axes[1].axhline(8, ls="--", lw=0.8, color="#555", label="target: 8 MiB")
    axes[1].set_title("peak RSS of the proxy (MiB)", fontsize=9)
    axes[1].legend(fontsize=7)
    for ax, ns in ((axes[0], names), (axes[1], prox)):
        ax.set_xticks(range(len(ns)))
        ax.set_xticklabels(ns, fontsize=7)
    fig.tight_layout()
    name = prefix + "chart_streaming.png"
    fig.savefig(os.path.join(out, name))
    plt.close(fig)
    return name
